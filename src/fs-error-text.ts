import { errnoCode } from "./core/errors.ts";

/** What a file system error says about its path, as the fix; read as "<path> <text>". */
const TEXTS: Record<string, string> = {
  ENOENT: "does not exist",
  EACCES: "is not accessible to this user: run as root or fix its permissions",
  EPERM: "is not permitted to this user: run as root",
  EISDIR: "is a directory; name a file",
  ENOTDIR: "has a file where its path needs a directory",
  EROFS: "is on a read-only file system: name a writable place",
  ENOSPC: "is on a full file system: free space or name another place",
  ELOOP: "runs into a symlink loop",
};

/**
 * An fs error as text the operator can act on, never the runtime's own
 * ("EACCES: permission denied, mkdir ..."): one table for every command.
 */
export function fsErrorText(error: unknown): string {
  const code = errnoCode(error);
  if (code === "EEXIST") {
    // A recursive mkdir only fails so when a file stands where a directory should be.
    const syscall = typeof error === "object" && error !== null && "syscall" in error ? (error as { syscall: unknown }).syscall : undefined;
    return syscall === "mkdir" ? "is a file, not a directory" : "already exists";
  }
  return (code === undefined ? undefined : TEXTS[code]) ?? `cannot be used (${code ?? "unknown error"})`;
}
