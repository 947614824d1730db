/* The binary's proof that a global function's signature change leaves no
 * old caller: the analysis sees only the units the diff changes, the
 * linked binary sees every unit. The change is safe to apply live when the
 * binary does not export the function (no other object can call it), never
 * takes its address (no call through a pointer), and calls or jumps to it
 * only from functions this patch replaces (their new code passes the new
 * arguments). An earlier patch's code that calls it also counts.
 *
 * Without disassembling, the scan over-approximates: every 4 bytes of code
 * that would reach the function as a rip-relative displacement are a
 * reference, a call when the bytes before them are a call or jump opcode,
 * an address taken otherwise. A false match can only refuse, never pass. */
#include "build_ctx.h"
#include "callers.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/file.h"

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TARGETS 16

struct proof {
	const char *name;
	uint64_t targets[MAX_TARGETS]; /* the function and its clones */
	size_t ntargets;
	size_t calls;
	char callers[256]; /* the replaced functions that call it */
	char why[512];	   /* why it is not proven; empty while it holds */
};

static bool unproven(struct proof *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool unproven(struct proof *p, const char *fmt, ...)
{
	va_list ap;

	if (!p->why[0]) {
		va_start(ap, fmt);
		vsnprintf(p->why, sizeof(p->why), fmt, ap);
		va_end(ap);
	}
	return false;
}

static const struct opatch_func *replaced_at(const struct build *b, uint64_t addr)
{
	for (size_t i = 0; i < b->patch.nfuncs; i++) {
		const struct opatch_func *f = &b->patch.funcs[i];

		if (addr >= f->old_addr && addr < f->old_addr + f->old_size)
			return f;
	}
	return NULL;
}

static const char *function_at(const struct build *b, uint64_t addr)
{
	const struct opus_sym *s = opus_symtab_func_at(&b->bin_syms, addr);

	return s ? s->name : "code no symbol covers";
}

/* The function and the clones the compiler made of it (name.isra.0,
 * name.constprop.0, name.part.0, name.cold): a caller may call any. */
static bool is_clone_of(const char *sym, const char *name)
{
	size_t n = strlen(name);

	return !strncmp(sym, name, n) && (sym[n] == '\0' || sym[n] == '.');
}

static bool find_targets(const struct build *b, struct proof *p, bool *local)
{
	*local = false;
	for (size_t i = 0; i < b->bin_syms.count; i++) {
		const struct opus_sym *s = &b->bin_syms.syms[i];

		if (s->type != STT_FUNC || s->shndx == SHN_UNDEF || !is_clone_of(s->name, p->name))
			continue;
		if (p->ntargets == MAX_TARGETS)
			return unproven(p, "%s has more than %d clones in the binary", p->name,
					MAX_TARGETS);
		p->targets[p->ntargets++] = s->value;
		*local |= s->bind == STB_LOCAL;
	}
	return p->ntargets ? true : unproven(p, "%s is not in the binary", p->name);
}

/* Is the function name (its first n characters) in the list "a, b, c"? */
static bool listed(const char *list, const char *name, size_t n)
{
	for (const char *at = list; *at; at += strspn(at, ", ")) {
		size_t len = strcspn(at, ",");

		if (len == n && !strncmp(at, name, n))
			return true;
		at += len;
	}
	return false;
}

static void note_call(struct proof *p, const struct opatch_func *caller)
{
	size_t len = strlen(p->callers), n = strcspn(caller->name, ".");

	p->calls++;
	if (!listed(p->callers, caller->name, n))
		snprintf(p->callers + len, sizeof(p->callers) - len, "%s%.*s", len ? ", " : "",
			 (int)n, caller->name);
}

/* One reference at site: a call (or jump) from replaced code holds; any
 * other refuses. */
static bool check_site(const struct build *b, struct proof *p, uint64_t site, bool call)
{
	const struct opatch_func *f = replaced_at(b, site);

	if (!call)
		return unproven(p,
				"its address is taken at 0x%" PRIx64 " in %s: it may be called "
				"through a pointer",
				site, function_at(b, site));
	if (!f)
		return unproven(p,
				"%s calls it at 0x%" PRIx64 ", and this patch does not replace %s",
				function_at(b, site), site, function_at(b, site));
	note_call(p, f);
	return true;
}

static int32_t le32(const uint8_t *at)
{
	return (int32_t)((uint32_t)at[0] | (uint32_t)at[1] << 8 | (uint32_t)at[2] << 16 |
			 (uint32_t)at[3] << 24);
}

/* call rel32, jmp rel32 or jcc rel32 ends just before byte i. */
static bool branch_before(const uint8_t *code, size_t i)
{
	return (i >= 1 && (code[i - 1] == 0xe8 || code[i - 1] == 0xe9)) ||
	       (i >= 2 && code[i - 2] == 0x0f && (code[i - 1] & 0xf0) == 0x80);
}

/* Is the rel32 at i a reference to target? Any 4 bytes that reach it
 * from the end of an instruction are one (an address is taken with lea,
 * which has no immediate after its displacement), except 0 before a branch
 * opcode: the multi-byte nops that pad up to a function end in 4 zero
 * bytes. */
static bool reaches(const uint8_t *code, size_t i, uint64_t addr, uint64_t target, bool *call)
{
	int32_t d = le32(code + i);

	*call = branch_before(code, i);
	return addr + i + 4 + (uint64_t)(int64_t)d == target && (d != 0 || *call);
}

/* Every rel32 that reaches a target, and, in a file loaded at its
 * link-time address, every imm32 that is its address. */
static bool scan_rel32(const struct build *b, struct proof *p, const uint8_t *code, size_t len,
		       uint64_t addr, bool absolute)
{
	for (size_t i = 0; i + 4 <= len; i++)
		for (size_t t = 0; t < p->ntargets; t++) {
			bool call;

			if (reaches(code, i, addr, p->targets[t], &call) &&
			    !check_site(b, p, addr + i, call))
				return false;
			if (absolute && (uint32_t)le32(code + i) == p->targets[t] &&
			    !check_site(b, p, addr + i, false))
				return false;
		}
	return true;
}

/* A jump with an 8-bit displacement, which the assembler makes only to a
 * function of the same section that no other object can override: for a
 * local target, the 128 bytes around it. */
static bool scan_rel8(const struct build *b, struct proof *p, const uint8_t *code, size_t len,
		      uint64_t addr)
{
	for (size_t t = 0; t < p->ntargets; t++) {
		int64_t at = (int64_t)(p->targets[t] - addr); /* the target's offset */
		int64_t lo = at - 130 > 0 ? at - 130 : 0;
		int64_t hi = at + 128 < (int64_t)len ? at + 128 : (int64_t)len;

		for (int64_t i = lo; i + 2 <= hi; i++) {
			uint8_t op = code[i];
			bool jump = op == 0xeb || (op >= 0x70 && op <= 0x7f) || op == 0xe3;

			if (jump && i + 2 + (int8_t)code[i + 1] == at &&
			    !check_site(b, p, addr + (uint64_t)i, true))
				return false;
		}
	}
	return true;
}

/* Loaded data that holds a target's address, in a file loaded at its
 * link-time address. */
static bool scan_data(struct proof *p, const uint8_t *data, size_t len, uint64_t addr,
		      const char *section)
{
	for (size_t i = 0; i + 8 <= len; i++) {
		uint64_t v;

		memcpy(&v, data + i, sizeof(v));
		for (size_t t = 0; t < p->ntargets; t++)
			if (v == p->targets[t])
				return unproven(p,
						"its address is stored at 0x%" PRIx64
						" (%s): it may be called through a pointer",
						addr + i, section);
	}
	return true;
}

/* A dynamic relocation that stores a target's address. */
static bool scan_relocs(struct proof *p, Elf_Data *d)
{
	GElf_Rela r;

	for (size_t i = 0; gelf_getrela(d, (int)i, &r); i++)
		for (size_t t = 0; t < p->ntargets; t++)
			if ((uint64_t)r.r_addend == p->targets[t])
				return unproven(p,
						"its address is stored at 0x%" PRIx64
						" (a dynamic relocation): it may be called "
						"through a pointer",
						r.r_offset);
	return true;
}

static bool holds_data(uint32_t type)
{
	return type == SHT_PROGBITS || type == SHT_INIT_ARRAY || type == SHT_FINI_ARRAY ||
	       type == SHT_PREINIT_ARRAY;
}

/* A file loaded where it was linked holds addresses as they are; a
 * position-independent one holds them as relocations. */
static bool scan_binary(const struct build *b, struct proof *p, bool local)
{
	GElf_Ehdr eh;
	Elf_Scn *scn = NULL;
	bool absolute = gelf_getehdr(b->bin.elf, &eh) && eh.e_type == ET_EXEC;
	size_t names;

	if (elf_getshdrstrndx(b->bin.elf, &names))
		return unproven(p, "%s has no section names", b->opts->binary);

	while ((scn = elf_nextscn(b->bin.elf, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;
		bool ok = true;

		if (!gelf_getshdr(scn, &sh) || !(sh.sh_flags & SHF_ALLOC) ||
		    !(d = elf_getdata(scn, NULL)) || !d->d_buf)
			continue;
		if (sh.sh_type == SHT_RELA)
			ok = scan_relocs(p, d);
		else if (sh.sh_type == SHT_PROGBITS && (sh.sh_flags & SHF_EXECINSTR))
			ok = scan_rel32(b, p, d->d_buf, d->d_size, sh.sh_addr, absolute) &&
			     (!local || scan_rel8(b, p, d->d_buf, d->d_size, sh.sh_addr));
		else if (absolute && holds_data(sh.sh_type)) /* else relocations */
			ok = scan_data(p, d->d_buf, d->d_size, sh.sh_addr,
				       elf_strptr(b->bin.elf, names, sh.sh_name) ?: "?");
		if (!ok)
			return false;
	}
	return true;
}

/* Code of a patch applied before this one that refers to the function
 * runs in the process: it must be code this patch replaces again. Its
 * copies of old code do not count: they run only during its transition. */
static bool scan_after(const struct build *b, struct proof *p)
{
	for (size_t i = 0; i < b->opts->nafter; i++) {
		const struct opatch *q = &b->after[i];

		for (size_t s = 0; s < q->nsections; s++)
			for (size_t r = 0;
			     !opatch_is_old_copy(q->sections[s].name) && r < q->sections[s].nrelas;
			     r++) {
				const struct opatch_sym *sym =
				    &q->syms[q->sections[s].relas[r].sym];

				if (sym->kind != OPATCH_SYM_SECTION &&
				    is_clone_of(sym->name, p->name))
					return unproven(p,
							"patch %s, built before this one, has code "
							"that refers to it (%s)",
							q->id, q->sections[s].name);
			}
	}
	return true;
}

static bool prove(const struct build *b, struct proof *p)
{
	struct opus_symtab dyn = {0};
	bool local, exported = false;

	if (!find_targets(b, p, &local))
		return false;
	if (!opus_symtab_load(b->bin.elf, true, &dyn)) {
		exported = opus_symtab_find_global(&dyn, p->name) != NULL;
		opus_symtab_free(&dyn);
	}
	if (exported)
		return unproven(p, "the binary exports %s: another object may call it", p->name);
	return scan_binary(b, p, local) && scan_after(b, p);
}

/* The findings line of the error at file:line, made a warning that says
 * why it holds. */
static int lift_finding(char **text, const char *file, int line, const char *proof)
{
	struct opus_buf out = {0};
	char head[4200];
	int n = snprintf(head, sizeof(head), "%s:%d: error: signature-change: ", file, line);

	for (const char *at = *text; *at;) {
		const char *eol = strchrnul(at, '\n');

		if (!strncmp(at, head, (size_t)n) && eol - at >= n)
			opus_buf_printf(&out, "%s:%d: warning: signature-change: %.*s; %s\n", file,
					line, (int)(eol - at - n), at + n, proof);
		else
			opus_buf_printf(&out, "%.*s\n", (int)(eol - at), at);
		at = *eol ? eol + 1 : eol;
	}
	if (!out.data && **text)
		return -ENOMEM;
	free(*text);
	*text = out.data ? out.data : strdup("");
	return *text ? 0 : -ENOMEM;
}

static int prove_one(const struct build *b, struct build_notes *notes, struct build_findings *f,
		     const char *name, const char *file, int line, struct opus_buf *why)
{
	struct proof p = {.name = name};
	char proof[1024];

	if (!prove(b, &p)) {
		f->unsafe = true;
		opus_buf_printf(why, "; %s: %s", name, p.why);
		return 0;
	}
	snprintf(proof, sizeof(proof),
		 "proven in %s: it is not exported, its address is never taken, and its %zu "
		 "call(s) are all in functions this patch replaces (%s)",
		 opus_base_name(b->opts->installed ? b->opts->installed : b->opts->binary), p.calls,
		 p.calls ? p.callers : "none");
	if (build_note_add(notes, BUILD_INFO, name, file, "the signature change is safe live: %s",
			   proof))
		return -ENOMEM;
	return lift_finding(&f->text, file, line, proof);
}

int build_prove_callers(const struct build *b, struct build_notes *notes, struct build_findings *f,
			char **why)
{
	struct opus_buf reasons = {0};
	int ret = 0;

	for (const char *at = f->callers_to_prove; !ret && at && *at;) {
		const char *eol = strchrnul(at, '\n');
		char name[256], file[4096];
		int line;

		if (sscanf(at, "%255[^\t]\t%4095[^\t]\t%d", name, file, &line) == 3)
			ret = prove_one(b, notes, f, name, file, line, &reasons);
		at = *eol ? eol + 1 : eol;
	}
	*why = reasons.data;
	return ret;
}
