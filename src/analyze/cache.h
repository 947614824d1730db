/* A finished analysis kept for the next run that asks the same question:
 * opus build after opus analyze (or a second build) does not parse every
 * unit again, which takes minutes for a header fix in a large tree.
 *
 * An entry is found by a digest of what names the question (the diff, the
 * tree's place, the compile database, libclang and opus themselves), and
 * trusted only while every file the parses read is as it was (size,
 * modification and change times, inode): ccache's direct mode. Entries
 * live in $OPUS_CACHE_DIR, else $XDG_CACHE_HOME/opus, else ~/.cache/opus,
 * under analysis/; OPUS_CACHE_DIR set to "" turns the cache off. */
#ifndef OPUS_ANALYZE_CACHE_H
#define OPUS_ANALYZE_CACHE_H

#include <stddef.h>

#include "analysis.h"
#include "analyze.h"

#define ANALYSIS_KEY_LEN 64

/* The files the parses read, by absolute path. */
struct analysis_reads {
	char **v;
	size_t n, cap;
};

int analysis_reads_add(struct analysis_reads *r, const char *path);
void analysis_reads_free(struct analysis_reads *r);

/* The digest naming o's question, or -ENOENT when no cache is in use. */
int analysis_cache_key(const struct analyze_opts *o, const char *clang_version,
		       char key[ANALYSIS_KEY_LEN + 1]);
/* 0 and the analysis kept under key, if every file it read is unchanged;
 * -ENOENT otherwise (a missing, stale, foreign or damaged entry). */
int analysis_cache_load(const char *key, struct analysis *out);
/* Keep a under key with the files it read. Best effort: a cache that
 * cannot be written only costs the next run its time. */
void analysis_cache_store(const char *key, const struct analysis *a,
			  const struct analysis_reads *reads);

/* The text of an analysis and the files its parses read, the entry's
 * lines without the files' states: how a worker process hands its units'
 * analysis back (fanout.c). analysis_text_read adds to a and reads. */
struct opus_buf;
int analysis_text_write(const struct analysis *a, const struct analysis_reads *reads,
			struct opus_buf *b);
int analysis_text_read(char *text, struct analysis *a, struct analysis_reads *reads);

#endif
