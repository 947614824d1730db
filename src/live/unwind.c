#include "unwind.h"
#include "mem.h"
#include "proc.h"
#include "registry.h"
#include "scan.h"
#include "util/err.h"
#include "util/file.h"

#include <elf.h>
#include <elfutils/libdwfl.h>
#include <libelf.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FRAMES     1024
#define DWARF_REG_RSP  7
#define MAX_SCAN_BYTES (1u << 20)  /* one thread's stack, for the fast path */
#define MAX_SCAN_TOTAL (64u << 20) /* all of them */
#define STACK_GUESS    (8u << 10)  /* a blocked thread's frames and TLS, for unwind_reserve */

struct unwinder {
	Dwfl *dwfl;
	pid_t pid;
	int mem_fd;
	const struct proc_maps *maps; /* read before the stop: where the stacks are */
	uint64_t restorer;	      /* __restore_rt: a signal frame's return address */
	uint64_t start_stack;	      /* the main thread's first frame is below; 0 */
	uint8_t *buf;		      /* the stacks' copy, its pages touched before the stop */
	size_t buf_len;
	const uint64_t *entries; /* old entries that jump into the guarded code */
	size_t nentries;
	const struct registry *patches; /* applied: their code's unwind tables */
	const struct reg_entry *own;	/* the transaction's patch, or NULL */
	uint8_t **images;		/* the ELF images made of those, for libdwfl */
	size_t nimages, images_cap;
};

static char *debuginfo_path;

/* The unwinder on whose behalf libdwfl asks for ELF files now: libdwfl's
 * callbacks carry no pointer of the caller's. */
static __thread struct unwinder *asking;

static int find_elf(Dwfl_Module *mod, void **userdata, const char *name, Dwarf_Addr base,
		    char **file_name, Elf **elfp);

static const Dwfl_Callbacks callbacks = {
    .find_elf = find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .debuginfo_path = &debuginfo_path,
};

int unwind_open(pid_t pid, int mem_fd, uint64_t restorer, const struct proc_maps *maps,
		struct unwinder **out)
{
	struct unwinder *u = calloc(1, sizeof(*u));

	*out = NULL;
	if (!u)
		return -ENOMEM;
	u->pid = pid;
	u->mem_fd = mem_fd;
	u->restorer = restorer;
	u->maps = maps;
	u->start_stack = proc_start_stack(pid);
	*out = u;
	return 0;
}

void unwind_set_entries(struct unwinder *u, const uint64_t *entries, size_t n)
{
	u->entries = entries;
	u->nentries = n;
}

void unwind_set_patches(struct unwinder *u, const struct registry *patches,
			const struct reg_entry *own)
{
	u->patches = patches;
	u->own = own;
}

/* The patch whose memfd mapping starts at base, if its record says where
 * its unwind tables are. */
static const struct reg_entry *patch_at(const struct unwinder *u, Dwarf_Addr base)
{
	for (size_t i = 0; u->patches && i < u->patches->n; i++)
		if (u->patches->v[i].base == base && u->patches->v[i].cfi)
			return &u->patches->v[i];
	return u->own && u->own->base == base && u->own->cfi ? u->own : NULL;
}

/* The section names of a patch's image: .eh_frame at 1, .shstrtab at 11. */
static const char image_names[] = "\0.eh_frame\0.shstrtab";

/* The headers of patch e's image (see patch_elf), its tables already at
 * frame_off: the ELF header, the PT_LOAD, the section names at names_off
 * and the three section headers at sh_off. */
static void image_headers(uint8_t *img, const struct reg_entry *e, size_t frame_off,
			  size_t names_off, size_t sh_off)
{
	Elf64_Ehdr *eh = (Elf64_Ehdr *)img;
	Elf64_Shdr *sh = (Elf64_Shdr *)(img + sh_off);

	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_ident[EI_VERSION] = EV_CURRENT;
	eh->e_type = ET_DYN;
	eh->e_machine = EM_X86_64;
	eh->e_version = EV_CURRENT;
	eh->e_phoff = sizeof(*eh);
	eh->e_shoff = sh_off;
	eh->e_ehsize = sizeof(*eh);
	eh->e_phentsize = sizeof(Elf64_Phdr);
	eh->e_phnum = 1;
	eh->e_shentsize = sizeof(Elf64_Shdr);
	eh->e_shnum = 3;
	eh->e_shstrndx = 2;
	*(Elf64_Phdr *)(img + sizeof(*eh)) = (Elf64_Phdr){.p_type = PT_LOAD,
							  .p_flags = PF_R | PF_X,
							  .p_vaddr = e->base,
							  .p_memsz = e->size,
							  .p_align = 4096};
	memcpy(img + names_off, image_names, sizeof(image_names));
	sh[1] = (Elf64_Shdr){.sh_name = 1,
			     .sh_type = SHT_PROGBITS,
			     .sh_flags = SHF_ALLOC,
			     .sh_addr = e->cfi,
			     .sh_offset = frame_off,
			     .sh_size = e->cfi_size,
			     .sh_addralign = 1};
	sh[2] = (Elf64_Shdr){.sh_name = 11,
			     .sh_type = SHT_STRTAB,
			     .sh_offset = names_off,
			     .sh_size = sizeof(image_names)};
}

/* An ELF image that describes patch e's mapping to libdwfl: one PT_LOAD
 * where the mapping is (so no bias) and one section, .eh_frame, a copy of
 * the tables the apply laid out with the code, at their address (the
 * record that says where was verified against the code's digest, which
 * covers them). Kept until the unwinder is closed; NULL if the tables
 * cannot be read. */
static Elf *patch_elf(struct unwinder *u, const struct reg_entry *e)
{
	size_t frame_off = sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr);
	size_t names_off = frame_off + e->cfi_size;
	size_t sh_off = (names_off + sizeof(image_names) + 7) & ~7ul;
	size_t len = sh_off + 3 * sizeof(Elf64_Shdr);
	uint8_t *img;

	if (e->cfi_size > MAX_SCAN_TOTAL || OPUS_PUSH(u->images, u->nimages, u->images_cap) ||
	    !(img = calloc(1, len)))
		return NULL;
	if (mem_read(u->mem_fd, e->cfi, img + frame_off, e->cfi_size)) {
		free(img);
		return NULL;
	}
	u->images[u->nimages++] = img;
	image_headers(img, e, frame_off, names_off, sh_off);
	elf_version(EV_CURRENT);
	return elf_memory((char *)img, len);
}

/* A patch's mapping is described by the image above; every other module
 * as libdwfl finds it in a live process. */
static int find_elf(Dwfl_Module *mod, void **userdata, const char *name, Dwarf_Addr base,
		    char **file_name, Elf **elfp)
{
	const struct reg_entry *e;

	if (asking && !strncmp(name, REGISTRY_PATH_PREFIX, strlen(REGISTRY_PATH_PREFIX)) &&
	    (e = patch_at(asking, base)) && (*elfp = patch_elf(asking, e)))
		return -1;
	return dwfl_linux_proc_find_elf(mod, userdata, name, base, file_name, elfp);
}

void unwind_reserve(struct unwinder *u, size_t nthreads)
{
	size_t want = nthreads * STACK_GUESS;
	uint8_t *buf;

	if (want <= u->buf_len || want > MAX_SCAN_TOTAL || !(buf = malloc(want)))
		return;
	/* Faulting pages in inside the pause costs more than copying them. */
	memset(buf, 0, want);
	free(u->buf);
	u->buf = buf;
	u->buf_len = want;
}

int unwind_load_cfi(struct unwinder *u)
{
	bool ok;
	int r;

	if (u->dwfl)
		return 0;
	u->dwfl = dwfl_begin(&callbacks);
	if (!u->dwfl)
		return opus_err(-ENOMEM, "libdw: %s", dwfl_errmsg(-1));
	/* Through a live thread when the main one has exited. */
	asking = u;
	r = dwfl_linux_proc_report(u->dwfl, proc_view_id(u->pid));
	ok = r == 0 && dwfl_report_end(u->dwfl, NULL, NULL) == 0 &&
	     dwfl_linux_proc_attach(u->dwfl, proc_view_id(u->pid), true) == 0;
	asking = NULL;
	if (ok)
		return 0;
	opus_err(-EIO, "process %d: cannot prepare stack unwinding: %s", (int)u->pid,
		 r > 0 ? strerror(r) : dwfl_errmsg(-1));
	dwfl_end(u->dwfl);
	u->dwfl = NULL;
	return -EIO;
}

void unwind_close(struct unwinder *u)
{
	if (!u)
		return;
	if (u->dwfl)
		dwfl_end(u->dwfl);
	for (size_t i = 0; i < u->nimages; i++)
		free(u->images[i]);
	free(u->images);
	free(u->buf);
	free(u);
}

/* The guarded functions found on the stacks, each once. */
struct busy {
	const char **names;
	size_t n, cap;
	pid_t first_tid;
};

static void note_busy(struct busy *b, const char *name, pid_t tid)
{
	for (size_t i = 0; i < b->n; i++)
		if (!strcmp(b->names[i], name))
			return;
	if (OPUS_PUSH(b->names, b->n, b->cap))
		return;
	if (!b->n)
		b->first_tid = tid;
	b->names[b->n++] = name;
}

struct walk {
	const struct unwinder *u;
	const struct range_set *rs;
	struct busy *busy;
	pid_t tid;
	const struct addr_range *hit; /* the innermost hit */
	int depth;
	Dwarf_Word sp;	       /* stack pointer of the last frame reached */
	Dwarf_Word scan_from;  /* stack pointer of the first frame in unknown code */
	int last_hit;	       /* depth of the outermost frame in a range so far, or -1 */
	struct exit_site exit; /* its caller's return address and where it is kept */
	const char *mid_entry; /* exit_site's */
	const char *reenters;  /* exit_site's */
};

/* Would a thread resuming at addr run an entry's jump from its middle?
 * Only a thread interrupted in a function's first instructions (or a
 * call there that returns before the fifth byte) resumes there. */
static bool inside_a_jump(const struct unwinder *u, uint64_t addr)
{
	for (size_t i = 0; i < u->nentries; i++)
		if (addr - u->entries[i] - 1 < JUMP_SIZE - 1)
			return true;
	return false;
}

static bool has_elf(Dwfl_Module *mod)
{
	Dwarf_Addr bias;

	return mod && dwfl_module_getelf(mod, &bias);
}

static int on_frame(Dwfl_Frame *frame, void *arg)
{
	struct walk *w = arg;
	const struct addr_range *r;
	bool activation;
	Dwarf_Addr pc;

	if (!dwfl_frame_pc(frame, &pc, &activation))
		return DWARF_CB_ABORT;
	if ((r = range_set_find(w->rs, pc)) && inside_a_jump(w->u, pc))
		w->mid_entry = r->name;
	/* A return address points after the call: the caller is at pc - 1. */
	if (!activation)
		pc--;
	dwfl_frame_reg(frame, DWARF_REG_RSP, &w->sp);
	/* Past code no module describes (an earlier patch), libdw can only
	 * guess; the stack from here up is scanned instead. */
	if (!w->scan_from &&
	    !has_elf(dwfl_addrmodule(dwfl_thread_dwfl(dwfl_frame_thread(frame)), pc)))
		w->scan_from = w->sp;
	/* Every hit, not just the first: the caller names them all. */
	if ((r = range_set_find(w->rs, pc))) {
		note_busy(w->busy, r->name, w->tid);
		if (r->reenters)
			w->reenters = r->name;
		if (!w->hit)
			w->hit = r;
		w->last_hit = w->depth;
		w->exit.tid = 0;
	} else if (w->last_hit >= 0 && w->last_hit == w->depth - 1 && !activation) {
		/* The caller of the outermost hit so far: its return address
		 * (pc + 1) sits just below its stack pointer, the callee's CFA. */
		w->exit = (struct exit_site){.tid = w->tid, .slot = w->sp - 8, .ret = pc + 1};
	}
	return ++w->depth < MAX_FRAMES ? DWARF_CB_OK : DWARF_CB_ABORT;
}

/* Does w return, outside the guarded code, right after a call that may
 * have led into it: a direct call to one of the entries that jump there,
 * or an indirect call (whose target no one can check now: a function
 * pointer, as nginx calls its event module through)? */
static bool returns_from_entry(const struct unwinder *u, const struct range_set *rs, uint64_t w)
{
	uint64_t target = 0;
	int call;

	if (range_set_find(rs, w) || range_set_find(rs, w - 1))
		return false;
	call = scan_call_before(u->mem_fd, w, &target);
	for (size_t i = 0; call == 1 && i < u->nentries; i++)
		if (target == u->entries[i])
			return true;
	return call == 2;
}

/* The exit of a busy stack DWARF could not unwind: the first word past the
 * last return into the guarded code (from the start if the thread's pc is
 * in it) that returns from a call that may have led there. A wrong guess
 * costs a wait, not a fault: a stub does what a jump to the address it
 * replaced would do, however it is reached, the slot is put back at the
 * next stop, and that stop checks every stack again. */
static void guess_exit(const struct unwinder *u, struct walk *w, const uint64_t *buf, size_t n,
		       size_t from, uint64_t at)
{
	for (size_t k = from; k < n; k++)
		if (returns_from_entry(u, w->rs, buf[k])) {
			w->exit =
			    (struct exit_site){.tid = w->tid, .slot = at + k * 8, .ret = buf[k]};
			return;
		}
}

/* Any word of the stack inside an entry's jump bytes: a signal frame's
 * saved pc, which is no return address, may be one. */
static void note_mid_entry(const struct unwinder *u, struct walk *w, const uint64_t *buf, size_t n)
{
	const struct addr_range *r;

	for (size_t k = 0; k < n; k++)
		if ((r = range_set_find(w->rs, buf[k])) && inside_a_jump(u, buf[k]))
			w->mid_entry = r->name;
}

/* Where DWARF unwinding stops early (code without CFI, such as an earlier
 * patch), look at the rest of the stack conservatively: any word that is a
 * return address into a guarded range counts as a frame there. */
static const struct addr_range *scan_stack(const struct unwinder *u, struct walk *w)
{
	const struct addr_range *r;
	struct proc_maps maps;
	const struct proc_map *m;
	uint64_t *buf, end;
	size_t len, after = 0;

	/* Read afresh: the thread may be younger than any earlier read. */
	if (proc_maps_read(u->pid, &maps))
		return NULL;
	end = (m = proc_map_at(&maps, w->scan_from)) ? m->end : 0;
	proc_maps_free(&maps);
	if (!end)
		return NULL;
	len = end - (w->scan_from & ~7ull);
	if (len > MAX_SCAN_BYTES)
		len = MAX_SCAN_BYTES;
	buf = malloc(len);
	if (!buf || mem_read(u->mem_fd, w->scan_from & ~7ull, buf, len)) {
		free(buf);
		return NULL;
	}
	for (size_t i = 0; (r = scan_words(u->mem_fd, w->rs, buf, len / 8, NULL, &i)); i++) {
		note_busy(w->busy, r->name, w->tid);
		if (r->reenters)
			w->reenters = r->name;
		if (!w->hit)
			w->hit = r;
		after = i + 1; /* past the last return into the guarded code */
	}
	w->exit.tid = 0;
	if (w->hit)
		guess_exit(u, w, buf, len / 8, after, w->scan_from & ~7ull);
	note_mid_entry(u, w, buf, len / 8);
	free(buf);
	return w->hit;
}

/* The fast path, which needs no unwinding: a thread running on its own
 * stack, whose pc is in no guarded range and no word of whose stack (from
 * its stack pointer to the end of the mapping) is an address in or just
 * past one, has no frame there: every caller's return address is on that
 * stack, and so is the state a signal handler interrupted. Its own stack is
 * [stack] for the main thread, and for another the mapping glibc put its
 * thread pointer in. On any other stack (a coroutine's), with a signal
 * frame on it (its handler may run on a sigaltstack set inside this very
 * stack, below the frames it interrupted), or in doubt, DWARF decides. */
struct stack_span {
	uint64_t from, len; /* len 0: not on its own stack, or in doubt */
	bool read;	    /* all len bytes were read */
	bool no_code;	    /* it runs no code of the program: clear */
};

static struct stack_span own_stack(const struct unwinder *u, const struct thread *t,
				   const struct range_set *rs, const struct user_regs_struct *known)
{
	struct user_regs_struct regs;
	const struct proc_map *m;
	struct stack_span s = {0};
	uint64_t top;

	if (known)
		regs = *known;
	else if (ptrace(PTRACE_GETREGS, t->tid, NULL, &regs) < 0)
		return s;
	if (range_set_find(rs, regs.rip))
		return s;
	/* Unwound, it took libdwfl 70 ms inside the pause to find nothing. */
	if (proc_thread_io_worker(t->tid, &regs)) {
		opus_info("thread %d: an io_uring worker, which runs no code of the program",
			  (int)t->tid);
		s.no_code = true;
		return s;
	}
	if (!(m = proc_map_at(u->maps, regs.rsp)))
		return s;
	if (!(t->leader ? !strcmp(m->path, "[stack]")
			: regs.fs_base >= m->start && regs.fs_base < m->end))
		return s;
	s.from = regs.rsp & ~7ull;
	/* glibc puts a thread's static TLS and descriptor at the top of its
	 * stack mapping, at and just below the thread pointer: frames end
	 * there. Above the main thread's first frame are only its arguments,
	 * environment and auxiliary vector. */
	top = !t->leader && regs.fs_base > s.from ? regs.fs_base & ~7ull : m->end;
	if (t->leader && u->start_stack > s.from && u->start_stack < m->end)
		top = (u->start_stack & ~7ull) + 8;
	s.len = top - s.from <= MAX_SCAN_BYTES ? top - s.from : 0;
	return s;
}

/* Every span read into buf (their lengths in a row) with one syscall per
 * IOV_MAX threads, not one per thread, inside the pause; each says if it
 * was read whole. */
static void read_stacks(const struct unwinder *u, struct stack_span *s, size_t n, uint8_t *buf)
{
	pid_t pid = proc_view_id(u->pid);
	struct iovec spans[IOV_MAX];
	bool whole[IOV_MAX];

	for (size_t i = 0; i < n;) {
		size_t first = i, k = 0;

		for (; i < n && k < IOV_MAX; i++)
			if (s[i].len)
				spans[k++] = (struct iovec){(void *)(uintptr_t)s[i].from, s[i].len};
		mem_read_spans(pid, u->mem_fd, spans, k, buf, whole);
		for (size_t j = first, w = 0; j < i; j++)
			if (s[j].len) {
				s[j].read = whole[w++];
				buf += s[j].len;
			}
	}
}

static bool words_clear(const struct unwinder *u, const uint64_t *w, size_t n,
			const struct range_set *rs)
{
	/* Most words are outside the hull of the ranges (and its end, for a
	 * return address just past one): one comparison each. */
	uint64_t lo = rs->lo, span = rs->hi - rs->lo + 1;

	for (size_t i = 0; i < n; i++) {
		if (w[i] == u->restorer)
			return false;
		if (w[i] - lo < span && (range_set_find(rs, w[i]) || range_set_find(rs, w[i] - 1)))
			return false;
	}
	return true;
}

enum { NOTE_NONE, NOTE_CLEAR, NOTE_NOT_CLEAR }; /* struct thread's stop_note */

void unwind_check_early(struct unwinder *u, const struct range_set *rs, struct thread *t,
			const struct user_regs_struct *regs)
{
	struct stack_span s = own_stack(u, t, rs, regs);

	if (s.len > u->buf_len)
		return; /* clear_threads reads it, into a buffer of its own */
	if (s.len)
		read_stacks(u, &s, 1, u->buf);
	t->stop_note =
	    s.no_code || (s.read && words_clear(u, (const uint64_t *)u->buf, s.len / 8, rs))
		? NOTE_CLEAR
		: NOTE_NOT_CLEAR;
}

/* Which threads the fast path clears: those unwind_check_early cleared,
 * then a GETREGS each for the others not yet looked at, and their stacks
 * in one read. clear[i] says for ts->v[i]. */
static void clear_threads(const struct unwinder *u, const struct threads *ts,
			  const struct range_set *rs, bool *clear)
{
	struct stack_span *s = calloc(ts->n + 1, sizeof(*s));
	uint64_t total = 0;
	uint8_t *buf;

	if (!s)
		return;
	for (size_t i = 0; i < ts->n; i++) {
		clear[i] = ts->v[i].stop_note == NOTE_CLEAR;
		if (ts->v[i].stop_note == NOTE_NONE)
			s[i] = own_stack(u, &ts->v[i], rs, NULL);
		clear[i] |= s[i].no_code;
		total += s[i].len;
	}
	buf = total <= u->buf_len ? u->buf : total <= MAX_SCAN_TOTAL ? malloc(total + 8) : NULL;
	if (buf) {
		read_stacks(u, s, ts->n, buf);
		for (size_t i = 0, off = 0; i < ts->n; off += s[i].len, i++)
			if (s[i].len)
				clear[i] =
				    s[i].read &&
				    words_clear(u, (const uint64_t *)(buf + off), s[i].len / 8, rs);
	}
	if (buf != u->buf)
		free(buf);
	free(s);
}

/* "thread T is inside F", and every other function seen busy. */
static int report_busy(pid_t pid, const struct busy *b)
{
	char more[2048] = "";
	size_t len = 0;

	for (size_t i = 1; i < b->n && len + 1 < sizeof(more); i++)
		len += (size_t)snprintf(more + len, sizeof(more) - len, "%s%s", i > 1 ? ", " : "",
					b->names[i]);
	return opus_err(-EBUSY, "process %d: thread %d is inside %s%s%s", (int)pid,
			(int)b->first_tid, b->names[0], b->n > 1 ? "; also on a stack: " : "",
			more);
}

/* DWARF's numbers for the x86-64 registers, in that order (7 is rsp). */
static const char *const dwarf_reg_names[16] = {"rax", "rdx", "rcx", "rbx", "rsi", "rdi",
						"rbp", "rsp", "r8",  "r9",  "r10", "r11",
						"r12", "r13", "r14", "r15"};

struct kept {
	const struct unwinder *u;
	const struct range_set *rs;
	const struct range_set *unwound; /* the code the stack check unwound */
	int depth;
	const struct addr_range *hit;
	unsigned reg;  /* the register that keeps it, or NO_REG: a word */
	uint64_t slot; /* the word's address */
	Dwarf_Addr pc;
	bool exact;	     /* pc is where the frame resumes, not a return address */
	Dwarf_Word inner_sp; /* the stack pointer of the frame inside this one */
	Dwarf_Addr inner_pc;
	bool inner_exact;
	uint64_t red_zone; /* below the innermost frame's stack pointer, live */
};

#define NO_REG 16U
/* The most of a frame read where the map, read before the stop, shows no
 * stack (one mapped since). */
#define UNMAPPED_FRAME_MAX (1u << 20)

/* Is register reg of frame, as CFI recovers it, a pointer into k->rs? */
static bool kept_hit(Dwfl_Frame *frame, unsigned reg, struct kept *k)
{
	Dwarf_Word v;

	if (reg == DWARF_REG_RSP || dwfl_frame_reg(frame, reg, &v) != 0)
		return false; /* not known here: no frame saved it */
	k->hit = range_set_find(k->rs, v);
	k->reg = reg;
	return k->hit != NULL;
}

/* w, a word into k->rs, returns into the code the stack check unwound:
 * a live frame there is that check's to find (unwound exactly), and a
 * stale return address stays in an unused slot for good (nginx's master
 * kept one of a function main had called). As scan.c's returns_into. */
static bool returns_into_unwound(const struct kept *k, uint64_t w)
{
	const struct addr_range *r = k->unwound ? range_set_find(k->unwound, w - 1) : NULL;
	uint64_t target;

	return r && w != r->hi && scan_call_before(k->u->mem_fd, w, &target) != 0;
}

/* Does a word of [lo, hi), a frame's own part of the stack (its locals,
 * its spills, what it saved), point into k->rs other than as a return
 * address? Such a word is a local, or a stale one (not told apart: in
 * doubt, it counts). Read a page at a time; a part that cannot be read
 * holds nothing the thread can read either. */
static bool frame_words_hit(struct kept *k, uint64_t lo, uint64_t hi)
{
	uint64_t words[512];

	for (lo &= ~7ull; lo < hi; lo += sizeof(words)) {
		size_t len = hi - lo < sizeof(words) ? (size_t)(hi - lo) : sizeof(words);

		if (mem_read(k->u->mem_fd, lo, words, len))
			continue;
		for (size_t i = 0; i < len / 8; i++) {
			const struct addr_range *r = range_set_find(k->rs, words[i]);

			if (r && !returns_into_unwound(k, words[i])) {
				k->hit = r;
				k->reg = NO_REG;
				k->slot = lo + i * 8;
				return true;
			}
		}
	}
	return false;
}

/* Does the frame inside this one (k->inner_*), whose part of the stack
 * ends at this one's stack pointer sp, hold a word into k->rs? The
 * innermost frame's part begins at its red zone. Not a signal's
 * trampoline (libdwfl says both it and the context it returns to resume
 * exactly, exact here): its part is the signal frame, whose unwritten
 * padding keeps stale words for good (a timer's handler, taken every
 * 100 us, found the program counter of an earlier signal there, and a
 * revert counting it was refused 460 times in 5 s); the interrupted
 * context's registers are read as the caller's. The handler's own frame,
 * inside the trampoline, is read. A frame's part lies in one mapping: a
 * caller on another stack (one the unwinder crossed to) does not make it
 * span the space between. */
static bool inner_frame_hit(struct kept *k, Dwarf_Word sp, bool exact)
{
	const struct proc_map *m = proc_map_at(k->u->maps, k->inner_sp);
	uint64_t lo = k->depth == 1 ? k->inner_sp - k->red_zone : k->inner_sp;
	uint64_t start = m ? m->start : 0, end = m ? m->end : k->inner_sp + UNMAPPED_FRAME_MAX;

	if (k->depth == 0 || (exact && k->inner_exact) || sp <= k->inner_sp)
		return false;
	if (!frame_words_hit(k, lo > start ? lo : start, sp < end ? sp : end))
		return false;
	k->pc = k->inner_pc;
	k->exact = k->inner_exact;
	k->depth--;
	return true;
}

/* Does this frame keep a pointer into k->rs for its caller, or the frame
 * inside it in a word of its own? A caller's registers are those a
 * function must keep (rbx, rbp, r12-r15); in a context a signal
 * interrupted (activation) every one is live. The innermost frame's
 * registers are the thread's own (scan.c's). */
static int on_kept_frame(Dwfl_Frame *frame, void *arg)
{
	static const unsigned kept_across_calls[] = {3, 6, 12, 13, 14, 15};
	struct kept *k = arg;
	bool hit = false;
	Dwarf_Word sp;

	if (!dwfl_frame_pc(frame, &k->pc, &k->exact) ||
	    dwfl_frame_reg(frame, DWARF_REG_RSP, &sp) != 0)
		return DWARF_CB_ABORT;
	if (k->depth > 0 && k->exact)
		for (unsigned reg = 0; reg < 16 && !hit; reg++)
			hit = kept_hit(frame, reg, k);
	else if (k->depth > 0)
		for (size_t i = 0; i < 6 && !hit; i++)
			hit = kept_hit(frame, kept_across_calls[i], k);
	if (hit || inner_frame_hit(k, sp, k->exact))
		return DWARF_CB_ABORT;
	k->inner_sp = sp;
	k->inner_pc = k->pc;
	k->inner_exact = k->exact;
	return ++k->depth < MAX_FRAMES ? DWARF_CB_OK : DWARF_CB_ABORT;
}

/* The function a frame's pc is in, by its symbol; NULL if none says. A
 * return address may be the next function's first byte (a call that
 * never returns ends its function): the call before it is what runs. */
static const char *frame_function(const struct unwinder *u, Dwarf_Addr pc, bool exact)
{
	Dwarf_Addr at = exact ? pc : pc - 1;
	Dwfl_Module *mod = dwfl_addrmodule(u->dwfl, at);

	return mod ? dwfl_module_addrname(mod, at) : NULL;
}

/* "in rbx for main at 0x..." or "at 0x7ffd... in the frame of nap at
 * 0x...". */
static int report_kept(const struct unwinder *u, pid_t tid, const struct kept *k)
{
	const char *fn = frame_function(u, k->pc, k->exact);
	char where[64];

	if (k->reg == NO_REG)
		snprintf(where, sizeof(where), "at 0x%" PRIx64 " in the frame of", k->slot);
	else
		snprintf(where, sizeof(where), "in %s for", dwarf_reg_names[k->reg]);
	return opus_err(-EBUSY,
			"process %d: thread %d keeps a pointer into %s %s %s at 0x%" PRIx64
			" (%d frames up): unmapping it would leave that pointer dangling",
			(int)u->pid, (int)tid, k->hit->name, where, fn ? fn : "the function",
			(uint64_t)k->pc, k->depth);
}

/* The red zone of a stopped thread's innermost frame: scan_red_zone, as
 * the candidates were read. */
static uint64_t red_zone_of(pid_t tid)
{
	struct user_regs_struct regs;

	return ptrace(PTRACE_GETREGS, tid, NULL, &regs) ? 0 : scan_red_zone(&regs);
}

int unwind_kept_pointers(struct unwinder *u, pid_t tid, const struct range_set *rs,
			 const struct range_set *unwound)
{
	struct kept k = {.u = u, .rs = rs, .unwound = unwound, .red_zone = red_zone_of(tid)};
	int r;

	if (!u->dwfl)
		return -EAGAIN;
	asking = u;
	r = dwfl_getthread_frames(u->dwfl, tid, on_kept_frame, &k);
	asking = NULL;
	if (k.hit)
		return report_kept(u, tid, &k);
	if (r != 0 && proc_thread_dead(tid))
		return opus_err(-ESRCH, "process %d: thread %d exited during the stack check",
				(int)u->pid, (int)tid);
	/* Frames past where DWARF stopped may keep one: in doubt. */
	if (r != 0)
		return opus_err(-EBUSY,
				"process %d: the live frames of thread %d hold a word that points "
				"into %s, and its stack could not be unwound past %d frames (%s) "
				"to tell whether a caller keeps it",
				(int)u->pid, (int)tid, rs->n ? rs->v[0]->name : "the patch",
				k.depth, dwfl_errmsg(-1));
	return 0;
}

int unwind_check(struct unwinder *u, const struct threads *ts, const struct range_set *rs,
		 struct exit_site *exits)
{
	struct busy busy = {0};
	bool *clear = calloc(ts->n + 1, sizeof(*clear));
	int ret = 0;

	if (exits)
		memset(exits, 0, ts->n * sizeof(*exits));
	if (clear)
		clear_threads(u, ts, rs, clear);
	for (size_t i = 0; i < ts->n && !ret; i++) {
		struct walk w = {
		    .u = u, .rs = rs, .busy = &busy, .tid = ts->v[i].tid, .last_hit = -1};
		int r;

		if (clear && clear[i]) {
			opus_info("thread %d: no return address into a guarded range on its stack",
				  (int)ts->v[i].tid);
			continue;
		}
		if (!u->dwfl) {
			ret = -EAGAIN;
			break;
		}
		asking = u;
		r = dwfl_getthread_frames(u->dwfl, ts->v[i].tid, on_frame, &w);
		asking = NULL;

		/* A thread that died under us (the process was killed) leaves
		 * libdwfl's per-thread state behind: ask it nothing more. One
		 * that gave no frame at all is dying too, though /proc may not
		 * say so yet (libdwfl asserted on the next thread, in CI). */
		if (r < 0 && (w.depth == 0 || proc_thread_dead(ts->v[i].tid))) {
			ret =
			    opus_err(-ESRCH, "process %d: thread %d exited during the stack check",
				     (int)u->pid, (int)ts->v[i].tid);
			break;
		}

		opus_info("thread %d: %d frames, unwind %s%s", (int)ts->v[i].tid, w.depth,
			  r == 0 ? "complete" : "stopped: ", r == 0 ? "" : dwfl_errmsg(-1));

		if (r < 0 && !w.scan_from)
			w.scan_from = w.sp;
		if (w.scan_from)
			scan_stack(u, &w);
		if (exits && w.hit) {
			exits[i] = w.exit.tid && (r == 0 || w.scan_from)
				       ? w.exit
				       : (struct exit_site){.tid = ts->v[i].tid};
			exits[i].mid_entry = w.mid_entry;
			exits[i].reenters = w.reenters;
		}
	}
	if (!ret && busy.n)
		ret = report_busy(u->pid, &busy);
	free(busy.names);
	free(clear);
	return ret;
}
