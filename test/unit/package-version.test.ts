import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { packageVersion } from "../../src/cli/package-version.js";

let root: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), "followups-version-"));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const write = async (dir: string, content: unknown) => {
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, "package.json"), JSON.stringify(content));
};

describe("the CLI's version", () => {
  it("is read beside dist/ and from further up, as the bench's build (bench/.build/src) needs", async () => {
    await write(root, { name: "followups", version: "1.2.3" });
    await mkdir(path.join(root, "dist"));
    await mkdir(path.join(root, "bench", ".build", "src"), { recursive: true });
    expect(packageVersion(path.join(root, "dist"))).toBe("1.2.3");
    expect(packageVersion(path.join(root, "bench", ".build", "src"))).toBe("1.2.3");
  });

  it("passes over another package's package.json and a broken one", async () => {
    await write(root, { name: "followups", version: "2.0.0" });
    await write(path.join(root, "bench"), { name: "followups-bench", version: "9.9.9" });
    const broken = path.join(root, "bench", "broken");
    await mkdir(broken);
    await writeFile(path.join(broken, "package.json"), "{ not json");
    expect(packageVersion(broken)).toBe("2.0.0");
  });

  it('is "unknown", not an error, when there is none: every command starts with it', async () => {
    const lonely = path.join(root, "a", "b");
    await mkdir(lonely, { recursive: true });
    // The temporary folder's parents hold no followups package.json.
    expect(packageVersion(lonely)).toBe("unknown");
  });
});
