/* The physical floor of a cgroup collector's cycle: the same files a cycle reads, read
 * in C, nothing parsed. `open`: open, read, close each file (as a collector that keeps no
 * descriptor); `pread`: every file opened once, then pread from offset 0 each cycle (as
 * ebbflow's collector keeps them). Prints each cycle's milliseconds, one per line.
 *
 * Build: gcc -O2 -o cfloor cfloor.c     Run: cfloor open|pread CYCLES < paths
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s open|pread CYCLES < paths\n", argv[0]);
        return 2;
    }
    int kept = strcmp(argv[1], "pread") == 0;
    int cycles = atoi(argv[2]);
    size_t n = 0, cap = 1024;
    char **paths = malloc(cap * sizeof *paths);
    char line[4096];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        if (!*line) continue;
        if (n == cap) paths = realloc(paths, (cap *= 2) * sizeof *paths);
        paths[n++] = strdup(line);
    }
    int *fds = calloc(n, sizeof *fds);
    if (kept)
        for (size_t i = 0; i < n; i++) fds[i] = open(paths[i], O_RDONLY);
    static char buf[65536];
    for (int c = 0; c < cycles; c++) {
        double started = now_ms();
        for (size_t i = 0; i < n; i++) {
            if (kept) {
                if (fds[i] >= 0 && pread(fds[i], buf, sizeof buf, 0) < 0) return 1;
            } else {
                int fd = open(paths[i], O_RDONLY);
                if (fd < 0) continue;
                if (read(fd, buf, sizeof buf) < 0) return 1;
                close(fd);
            }
        }
        printf("%.3f\n", now_ms() - started);
    }
    return 0;
}
