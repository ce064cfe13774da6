/* bootid: the kernel's boot id (/proc/sys/kernel/random/boot_id), a UUID that changes at
 * every boot. The derived models (write model, lazily synced read model) compare it with
 * the one they stored to tell "a process died" (nothing lost: the page cache survives)
 * from "the machine went down" (unsynced pages may be gone).
 */
#ifndef EF_BOOTID_H
#define EF_BOOTID_H

#include <stddef.h>

/* This boot's id into out (cap >= 64 for the whole UUID); "" when /proc does not tell, in
 * which case callers must not trust anything unsynced. */
void ef_boot_id(char *out, size_t cap);

#endif
