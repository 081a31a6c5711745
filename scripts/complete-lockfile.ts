import { readFile, writeFile } from "node:fs/promises";

/**
 * `npm run lock:complete`, after any dependency change. Some npm mirrors carry only the Linux
 * builds of platform-specific optional packages (biome's CLI, msgpackr-extract). npm then leaves
 * the other platforms out of package-lock.json and `npm ci` refuses the lock as out of sync. This
 * adds the missing entries, marked with their os/cpu so npm skips them on this platform.
 */
type Entry = Record<string, unknown> & { optionalDependencies?: Record<string, string> };
const PLATFORM = /-(android|darwin|linux|win32|freebsd)-(arm64|x64|arm|ia32)(-(musl|gnu|msvc))?$/;

const lock = JSON.parse(await readFile("package-lock.json", "utf8")) as {
  packages: Record<string, Entry>;
};
let added = 0;
for (const entry of Object.values({ ...lock.packages })) {
  for (const [name, version] of Object.entries(entry.optionalDependencies ?? {})) {
    const key = `node_modules/${name}`;
    const platform = PLATFORM.exec(name);
    if (lock.packages[key] || !platform) continue;
    const sibling = Object.entries(lock.packages).find(
      ([other]) =>
        other.startsWith(`node_modules/${name.replace(PLATFORM, "")}-`) && PLATFORM.test(other),
    )?.[1];
    const libc =
      platform[4] === "musl" ? ["musl"] : platform[1] === "linux" ? ["glibc"] : undefined;
    lock.packages[key] = {
      version,
      ...(sibling?.dev === true && { dev: true }),
      ...(sibling?.license !== undefined && { license: sibling.license }),
      optional: true,
      os: [platform[1]],
      cpu: [platform[2]],
      ...(libc && { libc }),
    };
    added++;
  }
}
const sorted = Object.fromEntries(
  Object.entries(lock.packages).sort(([a], [b]) =>
    a === "" ? -1 : b === "" ? 1 : a.localeCompare(b),
  ),
);
await writeFile("package-lock.json", `${JSON.stringify({ ...lock, packages: sorted }, null, 2)}\n`);
process.stdout.write(`package-lock.json: ${added} optional platform entries added\n`);
