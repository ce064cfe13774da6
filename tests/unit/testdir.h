/* testdir: temporary directories for the Check suites.
 *
 * Two levels, because Check runs each test in a forked child by default and a child that
 * fails an assertion exits without running its checked teardown:
 *  - td_case_setup/td_case_teardown, an unchecked fixture, run in the runner process: one
 *    base directory /tmp/eventfold-unit.XXXXXX per test case, always removed at its end,
 *    with whatever a failed test left in it;
 *  - td_setup/td_teardown, a checked fixture: one fresh directory per test inside the
 *    base, its path in td_dir.
 * Only directories made here are removed; td_rmtree does not follow symbolic links, and
 * first unmounts whatever a test mounted below the tree (td_mount_tmpfs), so that a failed
 * test leaves no mount behind.
 */
#ifndef EF_TESTDIR_H
#define EF_TESTDIR_H

#include <stddef.h>

#define TD_PATH_MAX 64

extern char td_dir[TD_PATH_MAX];

void td_case_setup(void);
void td_case_teardown(void);
void td_setup(void);
void td_teardown(void);

/* Removes a directory tree (depth first, not following links); errors are printed. */
void td_rmtree(const char *path);

/* Mounts a tmpfs of `bytes` at path (created if needed), for tests of a full disk. 0, or
 * -1 when this process may not mount (not root, no CAP_SYS_ADMIN): the caller then skips
 * what needs it, saying so on stderr. Unmounted by the teardowns above. */
int td_mount_tmpfs(const char *path, size_t bytes);

/* Runs fn(arg) in a forked child that then exits 0, and returns the child's wait status:
 * for code that must abort, or that needs process-wide settings (rlimits, signals) a test
 * must not leave behind. Works with CK_FORK=no too. */
int td_in_child(void (*fn)(void *), void *arg);

#endif
