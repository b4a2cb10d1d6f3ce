#ifndef TETHER_SPAWN_SHIM_H
#define TETHER_SPAWN_SHIM_H

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/types.h>

// In glibc since 2.29 and 2.34, but declared only under _GNU_SOURCE, which Swift's Glibc module
// is built without.
extern int posix_spawn_file_actions_addchdir_np(posix_spawn_file_actions_t *actions, const char *path);
extern int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int from);
extern char **environ;

// Starts `path` with `argv` and `envp` (NULL: this process's environment). The child's standard
// input, output and error are `in`, `out` and `err` (-1: /dev/null); it runs in `directory`
// (NULL: this process's); every other descriptor is closed in it, and its signals are at their
// defaults and unblocked, whatever thread spawns it. Returns 0 and sets `*pid`, or an errno
// (an executable that cannot be run is reported here, not by the child's exit).
static inline int tether_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[], const char *directory, int in,
                               int out, int err) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    int status = posix_spawn_file_actions_init(&actions);
    if (status != 0) {
        return status;
    }
    status = posix_spawnattr_init(&attributes);
    if (status != 0) {
        posix_spawn_file_actions_destroy(&actions);
        return status;
    }
    const int sources[3] = {in, out, err};
    for (int target = 0; target < 3 && status == 0; target++) {
        if (sources[target] < 0) {
            status = posix_spawn_file_actions_addopen(&actions, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0);
        } else {
            status = posix_spawn_file_actions_adddup2(&actions, sources[target], target);
        }
    }
    if (status == 0 && directory != NULL) {
        status = posix_spawn_file_actions_addchdir_np(&actions, directory);
    }
    if (status == 0) {
        status = posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    }
    sigset_t every, none;
    sigfillset(&every);
    sigemptyset(&none);
    if (status == 0) {
        status = posix_spawnattr_setsigdefault(&attributes, &every);
    }
    if (status == 0) {
        status = posix_spawnattr_setsigmask(&attributes, &none);
    }
    if (status == 0) {
        status = posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    }
    if (status == 0) {
        status = posix_spawn(pid, path, &actions, &attributes, argv, envp != NULL ? envp : environ);
    }
    posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
    return status;
}

#endif
