import { readFileSync } from "node:fs";
import path from "node:path";

/**
 * The version of the nearest followups package.json in `dir` or above it: beside src/ and dist/
 * (the image copies it too), two levels further up for the bench's build (bench/.build). A
 * package.json of another name (a folder's own) is passed over. "unknown" when there is none:
 * every command starts with this, so it never throws.
 */
export function packageVersion(dir: string): string {
  for (let at = path.resolve(dir); ; at = path.dirname(at)) {
    try {
      const found = JSON.parse(readFileSync(path.join(at, "package.json"), "utf8")) as {
        name?: unknown;
        version?: unknown;
      };
      if (found.name === "followups" && typeof found.version === "string") return found.version;
    } catch {
      // None here, or not readable: look further up.
    }
    if (path.dirname(at) === at) return "unknown";
  }
}
