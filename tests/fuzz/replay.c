/* tests/fuzz/replay.c — a main() for the fuzz targets without libFuzzer:
 * replays every file of the directories or files given, then feeds N
 * deterministic pseudo-random inputs (-n N, default 20000) and mutations
 * of the corpus. Exit 0 unless a target aborts or a sanitizer fires. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static unsigned char *corpus[4096];
static size_t corpus_len[4096], ncorpus;

static void run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	long n;

	if (f == NULL)
		return;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc(n > 0 ? (size_t)n : 1);
	if (buf != NULL && fread(buf, 1, (size_t)n, f) == (size_t)n) {
		LLVMFuzzerTestOneInput(buf, (size_t)n);
		if (ncorpus < 4096) {
			corpus[ncorpus] = buf;
			corpus_len[ncorpus++] = (size_t)n;
			buf = NULL;
		}
	}
	free(buf);
	fclose(f);
}

static void run_path(const char *path)
{
	struct stat st;
	struct dirent *de;
	DIR *d;

	if (stat(path, &st) < 0)
		return;
	if (!S_ISDIR(st.st_mode)) {
		run_file(path);
		return;
	}
	d = opendir(path);
	while (d != NULL && (de = readdir(d)) != NULL) {
		char p[4096];

		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
		run_file(p);
	}
	if (d != NULL)
		closedir(d);
}

int main(int argc, char **argv)
{
	unsigned char buf[8192];
	long n = 20000;
	int i = 1;

	if (argc > 2 && strcmp(argv[1], "-n") == 0) {
		n = strtol(argv[2], NULL, 10);
		i = 3;
	}
	for (; i < argc; i++)
		run_path(argv[i]);
	for (long k = 0; k < n; k++) {
		size_t len;

		if (ncorpus > 0 && k % 2 == 0) {
			/* mutate a corpus entry: flips, truncation, extension */
			size_t c = next() % ncorpus;

			len = corpus_len[c] < sizeof(buf) ? corpus_len[c] :
							    sizeof(buf);
			memcpy(buf, corpus[c], len);
			for (int m = 0; m < 1 + (int)(next() % 4) && len > 0; m++)
				buf[next() % len] ^= (unsigned char)(1 << (next() % 8));
			if (next() % 4 == 0 && len > 0)
				len = next() % len;
		} else {
			len = next() % 600;
			for (size_t j = 0; j < len; j++)
				buf[j] = (unsigned char)next();
		}
		LLVMFuzzerTestOneInput(buf, len);
	}
	for (size_t c = 0; c < ncorpus; c++)
		free(corpus[c]);
	printf("replay: %zu corpus files, %ld generated inputs: no crash\n",
	       ncorpus, n);
	return 0;
}
