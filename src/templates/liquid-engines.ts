import { assert, CaptureTag, type Context, Liquid, type LiquidOptions, toValue } from "liquidjs";

/** Tags that would read other files; operator templates stand alone. */
const FILE_TAGS = ["include", "render", "layout"] as const;

/**
 * Bounds on what one template may cost, a few times above what real follow-ups need. Measured
 * with the event contract's largest order (500 items, 300-character names full of characters HTML
 * escapes, 200-character customer and store names): the shipped thank-you email, the most
 * expensive, renders a part in 4 to 6 ms once warm and in up to 48 ms as the first render of a
 * fresh process; it charges liquid's memory counter 161,000 (HTML escaping), a template running
 * three filters on every item name 470,000. The largest shipped file has about 2,200 characters. A loop
 * over the items inside a loop over the items writes 75,000,000 characters: OUTPUT_LIMIT stops it,
 * and `check` rejects it (work without output, by RENDER_BUDGET_MS and renderLimit); these limits
 * are the backstop at send time.
 */
export const TEMPLATE_LIMITS = {
  /** Characters in one template file: Gmail clips a message larger than 102 KB anyway. */
  parseLimit: 100_000,
  /**
   * Milliseconds one render of one part may take: five times the slowest cold render. Wall time at
   * send time; CPU time in `check` and at a worker's start (RenderClock).
   */
  renderLimit: 250,
  /** Characters liquid's filters and ranges may allocate in one render: four times the heavy case. */
  memoryLimit: 2_000_000,
} as const;

/**
 * Characters one render of one part may output (ours, not liquid's: renderPart counts what liquid
 * writes): eight times the largest shipped part with the largest order (the thank-you HTML,
 * 244,000). liquid stops a render by time only, and since liquidjs 10.31 renders a loop over the
 * items inside a loop over the items (75,000,000 characters with the largest order) in 120 to
 * 230 ms, under renderLimit; this stops it within a few milliseconds, at its line, before what it
 * wrote costs seconds more to tidy, measure as an SMS, or send.
 */
export const OUTPUT_LIMIT = 2_000_000;

/** What a render that wrote more than OUTPUT_LIMIT characters fails with (a TemplateError). */
export const OUTPUT_LIMIT_MESSAGE = "template output limit exceeded";

/** Where a render keeps the count of what it wrote, to its output and into captures. */
const WRITTEN = "followups:written";

/**
 * Where liquid writes a render's output (its Emitter), or what a `{% capture %}` collects,
 * counting the characters against OUTPUT_LIMIT, one count per render: a render that writes more
 * stops at the output or text that went over, which liquid's error then names the line of.
 */
export class LimitedOutput {
  buffer = "";
  private readonly count: { written: number };
  constructor(ctx: Context) {
    this.count = ctx.getRegister(WRITTEN, { written: 0 }) as { written: number };
  }
  write(value: unknown): void {
    const text = outputText(value);
    assert(this.count.written + text.length <= OUTPUT_LIMIT, OUTPUT_LIMIT_MESSAGE);
    this.count.written += text.length;
    this.buffer += text;
  }
}

/** A value as liquid writes it out (its stringify): nothing for null, lists joined. */
function outputText(value: unknown): string {
  const plain = toValue(value);
  if (typeof plain === "string") return plain;
  if (plain === null || plain === undefined) return "";
  if (Array.isArray(plain)) return plain.map(outputText).join("");
  return String(plain);
}

/** liquid's capture, counting what it collects as written (a capture in a loop in a loop). */
class LimitedCapture extends CaptureTag {
  override *render(ctx: Context): Generator<unknown, void, string> {
    const html = yield this.liquid.renderer.renderTemplates(
      this.templates,
      ctx,
      new LimitedOutput(ctx),
    );
    ctx.bottom()[this.variable] = html;
  }
}

const SHARED: LiquidOptions = {
  strictVariables: true,
  strictFilters: true,
  ownPropertyOnly: true,
  // An in-memory, empty file map: no tag or filter can reach the file system.
  templates: {},
  ...TEMPLATE_LIMITS,
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
    engine.registerTag("capture", LimitedCapture);
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
