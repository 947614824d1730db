#!/usr/bin/env bash
# Builds the RUNNING nginx for the real-world suite into $1: Debian 12's
# nginx source, the original tarball plus Debian's non-CVE patches, Debian's
# configure flags (debian/rules, bin flavour) with mail and stream as dynamic
# modules, -O2 -g, and a compile_commands.json. Prints the tree's path.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
work=$1
tree=$work/run
if [ -x "$tree/objs/nginx" ] && [ -e "$tree/compile_commands.json" ]; then
	echo "$tree"
	exit 0
fi
bash "$ROOT/tools/deb-tree.sh" nginx "$work/source" "$tree"

cflags="$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get CFLAGS) -fPIC"
cflags="$cflags $(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get CPPFLAGS)"
ldflags="$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get LDFLAGS) -fPIC"
prefix=$work/prefix
# Debian's bin flavour; the geoip, image-filter, perl and xslt modules are
# left out (they need libraries this suite does not exercise).
(
	cd "$tree"
	./configure --with-cc-opt="$cflags" --with-ld-opt="$ldflags" \
		--prefix="$prefix" --conf-path="$prefix/nginx.conf" \
		--http-log-path="$prefix/access.log" --error-log-path=stderr \
		--lock-path="$prefix/nginx.lock" --pid-path="$prefix/nginx.pid" \
		--modules-path="$tree/objs" \
		--http-client-body-temp-path="$prefix/body" \
		--http-fastcgi-temp-path="$prefix/fastcgi" \
		--http-proxy-temp-path="$prefix/proxy" \
		--http-scgi-temp-path="$prefix/scgi" \
		--http-uwsgi-temp-path="$prefix/uwsgi" \
		--with-compat --with-debug --with-pcre-jit --with-http_ssl_module \
		--with-http_stub_status_module --with-http_realip_module \
		--with-http_auth_request_module --with-http_v2_module --with-http_dav_module \
		--with-http_slice_module --with-threads \
		--with-http_addition_module --with-http_flv_module --with-http_gunzip_module \
		--with-http_gzip_static_module --with-http_mp4_module \
		--with-http_random_index_module --with-http_secure_link_module \
		--with-http_sub_module --with-mail_ssl_module --with-stream_ssl_module \
		--with-stream_ssl_preread_module --with-stream_realip_module \
		--with-mail=dynamic --with-stream=dynamic >"$work/configure.log" 2>&1
	bear -- make -j"$(nproc)" >"$work/make.log" 2>&1
)
mkdir -p "$prefix"/{body,fastcgi,proxy,scgi,uwsgi,html/dav}
echo "$tree"
