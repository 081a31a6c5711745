import { execFileSync } from "node:child_process";
import {
  appendFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  watch,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, expect, it } from "vitest";
import { watchConfigDir } from "../../src/config/config-watcher.js";

/** Generous: the machine is small and other suites may be running; a pass takes ~0.3 s a step. */
const NOTICE_DEADLINE_MS = 15_000;
const TEST_TIMEOUT_MS = 120_000;

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

/** A private copy of ./config, removed after the test. */
function configCopy(): string {
  const root = mkdtempSync(path.join(tmpdir(), "followups-watch-"));
  cleanups.push(() => rmSync(root, { recursive: true, force: true }));
  const dir = path.join(root, "config");
  cpSync("config", dir, { recursive: true });
  return dir;
}

interface Probe {
  calls: number;
  /** The last line of `observed` at each call: what a reload would have read. */
  seen: string[];
  close(): void;
}

function startWatching(dir: string, observed = path.join(dir, "rules.yaml")): Probe {
  const probe: Probe = {
    calls: 0,
    seen: [],
    close: () => watcher.close(),
  };
  const watcher = watchConfigDir(dir, () => {
    probe.calls += 1;
    const text = existsSync(observed) ? readFileSync(observed, "utf8") : "";
    probe.seen.push(text.trimEnd().split("\n").at(-1) ?? "");
  });
  cleanups.push(() => watcher.close());
  return probe;
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + NOTICE_DEADLINE_MS;
  while (!check()) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${NOTICE_DEADLINE_MS} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Makes one edit and waits until the watcher has called back for it. */
async function expectNoticed(probe: Probe, what: string, edit: () => void): Promise<void> {
  const before = probe.calls;
  edit();
  await until(() => probe.calls > before, `${what} to be noticed`);
}

let edits = 0;
const nextLine = (file: string) => `${readFileSync(file, "utf8").trimEnd()}\n# edit ${++edits}\n`;

/** What editors and `sed -i` do: write a new file beside the old one, rename it over. */
function saveByRename(file: string): void {
  writeFileSync(`${file}.tmp`, nextLine(file));
  renameSync(`${file}.tmp`, file);
}

function saveInPlace(file: string): void {
  writeFileSync(file, nextLine(file));
}

const hasSed = (() => {
  try {
    execFileSync("sed", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

it(
  "notices every edit to rules.yaml after an atomic rename save",
  async () => {
    const dir = configCopy();
    const rules = path.join(dir, "rules.yaml");
    const probe = startWatching(dir);

    await expectNoticed(probe, "a rename save", () => saveByRename(rules));
    await expectNoticed(probe, "an in-place write after a rename save", () => saveInPlace(rules));
    await expectNoticed(probe, "a second rename save", () => saveByRename(rules));
    await expectNoticed(probe, "an in-place write after two rename saves", () =>
      saveInPlace(rules),
    );
    expect(probe.seen.at(-1)).toBe(`# edit ${edits}`);
  },
  TEST_TIMEOUT_MS,
);

it.skipIf(!hasSed)(
  "notices repeated `sed -i` edits, each of which gives rules.yaml a new inode",
  async () => {
    const dir = configCopy();
    const rules = path.join(dir, "rules.yaml");
    appendFileSync(rules, "# sed 0\n");
    const probe = startWatching(dir);

    for (let n = 1; n <= 3; n++) {
      await expectNoticed(probe, `sed -i number ${n}`, () =>
        execFileSync("sed", ["-i", `s/^# sed ${n - 1}$/# sed ${n}/`, rules]),
      );
      expect(probe.seen.at(-1)).toBe(`# sed ${n}`);
    }
    await expectNoticed(probe, "an in-place write after sed -i", () => saveInPlace(rules));
  },
  TEST_TIMEOUT_MS,
);

it(
  "notices template edits, rename saves, and a template directory replaced by a new one",
  async () => {
    const dir = configCopy();
    const templates = path.join(dir, "templates");
    const thankYou = path.join(templates, "thank-you");
    const template = path.join(thankYou, "en.text.liquid");
    const probe = startWatching(dir, template);

    await expectNoticed(probe, "a template rename save", () => saveByRename(template));
    await expectNoticed(probe, "an in-place template write", () => saveInPlace(template));
    await expectNoticed(probe, "a second template rename save", () => saveByRename(template));

    // A deploy that swaps the whole directory: build the new one beside it, remove, rename.
    await expectNoticed(probe, "the template directory being replaced", () => {
      cpSync(thankYou, `${thankYou}.next`, { recursive: true });
      saveInPlace(path.join(`${thankYou}.next`, "en.text.liquid"));
      rmSync(thankYou, { recursive: true });
      renameSync(`${thankYou}.next`, thankYou);
    });
    expect(probe.seen.at(-1)).toBe(`# edit ${edits}`);
    await expectNoticed(probe, "an edit inside the replacement directory", () =>
      saveInPlace(template),
    );
    await expectNoticed(probe, "a rename save inside the replacement directory", () =>
      saveByRename(template),
    );

    // A template directory that did not exist when watching started.
    const added = path.join(templates, "anniversary");
    await expectNoticed(probe, "a new template directory", () => {
      mkdirSync(added);
      writeFileSync(path.join(added, "en.text.liquid"), "Hello {{ customer.name }}\n");
    });
    await expectNoticed(probe, "an edit inside the new template directory", () =>
      saveInPlace(path.join(added, "en.text.liquid")),
    );
    await expectNoticed(probe, "the whole templates directory being renamed over", () => {
      cpSync(templates, `${templates}.next`, { recursive: true });
      rmSync(templates, { recursive: true });
      renameSync(`${templates}.next`, templates);
    });
    await expectNoticed(probe, "an edit in the renamed-over templates directory", () =>
      saveInPlace(template),
    );
    expect(probe.seen.at(-1)).toBe(`# edit ${edits}`);
  },
  TEST_TIMEOUT_MS,
);

it(
  "keeps watching when the config directory itself is renamed over or removed and recreated",
  async () => {
    const dir = configCopy();
    const rules = path.join(dir, "rules.yaml");
    const template = path.join(dir, "templates", "thank-you", "en.text.liquid");
    const probe = startWatching(dir);

    await expectNoticed(probe, "the config directory being renamed over", () => {
      cpSync(dir, `${dir}.next`, { recursive: true });
      rmSync(dir, { recursive: true });
      renameSync(`${dir}.next`, dir);
    });
    await expectNoticed(probe, "an edit in the new config directory", () => saveInPlace(rules));
    await expectNoticed(probe, "a template edit in the new config directory", () =>
      saveInPlace(template),
    );

    await expectNoticed(probe, "the config directory being removed and recreated", () => {
      cpSync(dir, `${dir}.copy`, { recursive: true });
      rmSync(dir, { recursive: true });
      mkdirSync(dir);
      cpSync(`${dir}.copy`, dir, { recursive: true });
      rmSync(`${dir}.copy`, { recursive: true });
    });
    await expectNoticed(probe, "a rename save in the recreated directory", () =>
      saveByRename(rules),
    );
    await expectNoticed(probe, "a template rename save in the recreated directory", () =>
      saveByRename(template),
    );
    expect(probe.seen.at(-1)).toBe(`# edit ${edits - 1}`);
  },
  TEST_TIMEOUT_MS,
);

it(
  "calls back once per burst of edits, after the last one",
  async () => {
    const dir = configCopy();
    const rules = path.join(dir, "rules.yaml");
    const probe = startWatching(dir);

    // Editors write in several steps; all of them are one change.
    for (let n = 0; n < 3; n++) {
      saveInPlace(rules);
      saveByRename(rules);
    }
    const burstEnd = `# edit ${edits}`;
    await until(() => probe.seen.includes(burstEnd), "the burst to be noticed");
    // A later edit is the barrier: any second call for the burst would come before its call.
    saveInPlace(rules);
    const marker = `# edit ${edits}`;
    await until(() => probe.seen.includes(marker), "the marker edit to be noticed");
    expect(probe.seen).toEqual([burstEnd, marker]);
  },
  TEST_TIMEOUT_MS,
);

/** inotify watches this process holds (Linux: one `inotify wd:` line each in fdinfo). */
function inotifyWatches(): number {
  let count = 0;
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) !== "anon_inode:inotify") continue;
      const info = readFileSync(`/proc/self/fdinfo/${fd}`, "utf8");
      count += info.split("\n").filter((line) => line.startsWith("inotify wd:")).length;
    } catch {
      // The descriptor closed while we looked.
    }
  }
  return count;
}

it(
  "close() releases every watch and the pending settle timer: nothing is called afterwards",
  async () => {
    const dir = configCopy();
    const rules = path.join(dir, "rules.yaml");
    const linux = process.platform === "linux";
    const watchesBefore = linux ? inotifyWatches() : 0;

    const closed = startWatching(dir);
    await expectNoticed(closed, "a rename save", () => saveByRename(rules));
    if (linux) expect(inotifyWatches()).toBeGreaterThan(watchesBefore);

    // Close with a burst in flight: once a plain watch of the same directory has seen the edit,
    // the watcher under test has too (same inotify queue), and its settle timer is pending.
    let delivered = false;
    const plain = watch(dir, { persistent: false }, () => {
      delivered = true;
    });
    cleanups.push(() => plain.close());
    saveByRename(rules);
    await until(() => delivered, "the edit's events to be delivered");
    const callsAtClose = closed.calls;
    closed.close();
    closed.close(); // twice is harmless
    plain.close();
    if (linux) expect(inotifyWatches()).toBe(watchesBefore);

    // A second watcher is the barrier: once it has seen two later edits (two settle periods),
    // a leftover timer or watch of the closed one would have fired.
    const barrier = startWatching(dir);
    await expectNoticed(barrier, "an edit after close", () => saveInPlace(rules));
    await expectNoticed(barrier, "a rename save after close", () => saveByRename(rules));
    expect(closed.calls).toBe(callsAtClose);
    barrier.close();
    if (linux) expect(inotifyWatches()).toBe(watchesBefore);
  },
  TEST_TIMEOUT_MS,
);
