import { Liquid, type LiquidOptions } from "liquidjs";

/** Tags that would read other files; operator templates stand alone. */
const FILE_TAGS = ["include", "render", "layout"] as const;

const SHARED: LiquidOptions = {
  strictVariables: true,
  strictFilters: true,
  ownPropertyOnly: true,
  // An in-memory, empty file map: no tag or filter can reach the file system.
  templates: {},
  // Bounds for a template that loops without end; real follow-ups are far below them.
  parseLimit: 200_000,
  renderLimit: 2_000,
  memoryLimit: 10_000_000,
};

/** The two engines templates are rendered with: plain text and subject as written, HTML escaped. */
export interface LiquidEngines {
  readonly text: Liquid;
  /** Escapes every output; `| raw` opts out. */
  readonly html: Liquid;
}

/** Creates the engines with strict variables and filters, own properties only, and no files. */
export function createLiquidEngines(): LiquidEngines {
  const text = new Liquid(SHARED);
  const html = new Liquid({ ...SHARED, outputEscape: "escape" });
  for (const engine of [text, html]) {
    for (const name of FILE_TAGS) {
      engine.registerTag(name, {
        parse() {
          throw new Error(
            `{% ${name} %} is not available: each template file stands alone (copy the shared part into it)`,
          );
        },
        render() {},
      });
    }
  }
  return { text, html };
}
