# Thin wrapper over Meson: `make` builds build/opus.
BUILD ?= build
ASAN_BUILD ?= build-asan
MESON_FLAGS ?=
# Each stage of make check prints how long it took ("== stage NAME: N s").
STAGE = bash tools/stage.sh

.PHONY: all deps check check-real check-deb check-installed survey fuzz soak bench demo format format-check clean

all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(BUILD)/build.ninja:
	meson setup $(BUILD) $(MESON_FLAGS) >/dev/null

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false >/dev/null

deps:
	@bash tools/deps.sh

check: deps
	$(MAKE) format-check
	$(STAGE) build $(MAKE) all
	$(STAGE) build-asan sh -c '$(MAKE) $(ASAN_BUILD)/build.ninja && ninja -C $(ASAN_BUILD)'
	$(STAGE) unit meson test -C build --print-errorlogs
	$(STAGE) unit-asan meson test -C $(ASAN_BUILD) --print-errorlogs
	$(STAGE) integration bash tests/run.sh
	$(STAGE) fuzz env FUZZ_SECONDS=$${FUZZ_SECONDS:-20} $(MAKE) fuzz
	$(STAGE) real $(MAKE) check-real
	$(STAGE) deb $(MAKE) check-deb
	$(STAGE) soak env SOAK_CYCLES=100 SOAK_NGINX_CYCLES=20 SOAK_KILLS=0 $(MAKE) soak
	$(STAGE) installed env INSTALLED_NGINX=0 $(MAKE) check-installed

# Apply/revert cycles under load: 1000 on a multi-threaded server, 200 on
# nginx under wrk (make check runs 100 and 20). build/soak.json.
soak: all
	bash tests/soak/run.sh

# libFuzzer over every reader of untrusted input, FUZZ_SECONDS (60) each;
# make check runs them 20 s each.
fuzz: all
	bash fuzz/run.sh

# Debian's own security fixes applied live: nginx under load (tests/real/nginx)
# and libexpat in python3 (tests/real/expat); memcached replaced whole and
# checked by its own tests (tests/real/memcached), and so is redis
# (tests/real/redis; its Debian fixes, one by one, are in make survey).
check-real: all
	$(STAGE) nginx bash tests/real/nginx/run.sh
	$(STAGE) nginx-self bash tests/real/nginx/self.sh
	$(STAGE) nginx-exits bash tests/real/nginx/exits.sh
	$(STAGE) expat bash tests/real/expat/run.sh
	$(STAGE) expat-self bash tests/real/expat/self.sh
	$(STAGE) memcached-self bash tests/real/memcached/self.sh
	$(STAGE) redis-self env REDIS_SELF_REVERTED=$${REDIS_SELF_REVERTED:-0} bash tests/real/redis/self.sh

# opus as a Debian package: built with dpkg-buildpackage, checked by
# lintian, installed, used on a running server, purged (tests/deb/run.sh).
check-deb: deps
	bash tests/deb/run.sh

# Debian's installed binaries patched live with opus deb: memcached and
# nginx from the archive, rebuilt as Debian built them (about 12 min the
# first time; installs packages and -dev versions, so make check runs it
# last). build/real/installed.json.
check-installed: all
	bash tests/real/installed/run.sh

# Debian 12's own CVE fixes, built and applied live, package by package
# (hours; installs build-dependencies: a build machine's job; resumable).
# Never part of make check. docs/survey.md, docs/survey-results.json. First
# redis's Debian fixes, each applied live under load (tests/real/redis), and
# opus deb on the archive's nginx (make check runs check-installed on
# memcached alone).
survey: all
	$(STAGE) redis-self env REDIS_SELF_REVERTED=1 bash tests/real/redis/self.sh
	$(STAGE) redis-fixes bash tests/real/redis/fixes.sh
	$(STAGE) installed $(MAKE) check-installed
	bash survey/run.sh

# Figures, never part of make check: build/bench/results.json and plots.
bench: deps
	$(MAKE) all
	bash bench/run.sh

demo: deps
	$(MAKE) all
	bash demo/run.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
