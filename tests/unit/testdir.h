/* testdir: temporary directories for the Check suites.
 *
 * Two levels, because Check runs each test in a forked child by default and a child that
 * fails an assertion exits without running its checked teardown:
 *  - td_case_setup/td_case_teardown, an unchecked fixture, run in the runner process: one
 *    base directory /tmp/eventfold-unit.XXXXXX per test case, always removed at its end,
 *    with whatever a failed test left in it;
 *  - td_setup/td_teardown, a checked fixture: one fresh directory per test inside the
 *    base, its path in td_dir.
 * Only directories made here are removed; td_rmtree does not follow symbolic links.
 */
#ifndef EF_TESTDIR_H
#define EF_TESTDIR_H

#define TD_PATH_MAX 64

extern char td_dir[TD_PATH_MAX];

void td_case_setup(void);
void td_case_teardown(void);
void td_setup(void);
void td_teardown(void);

/* Removes a directory tree (depth first, not following links); errors are printed. */
void td_rmtree(const char *path);

#endif
