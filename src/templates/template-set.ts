import { assert, Context, type Template, toValueSync } from "liquidjs";
import type { Channel } from "../domain/events.js";
import { LimitedOutput, type LiquidEngines, TEMPLATE_LIMITS } from "./liquid-engines.js";
import { describeSmsLength, fitSms } from "./sms-fit.js";
import { smsOptOutLine } from "./sms-opt-out.js";
import type { TemplateContext } from "./template-context.js";

/** The files a template variant can have: `<locale>.<part>.liquid`. */
export const TEMPLATE_PARTS = ["subject", "text", "html"] as const;
export type TemplatePart = (typeof TEMPLATE_PARTS)[number];

/** Parts a channel cannot send without; HTML is always optional. */
export const REQUIRED_PARTS: Readonly<Record<Channel, readonly TemplatePart[]>> = {
  email: ["subject", "text"],
  sms: ["text"],
  voice: ["text"],
};

/** Which parts a channel sends. */
export const CHANNEL_PARTS: Readonly<Record<Channel, readonly TemplatePart[]>> = {
  email: ["subject", "text", "html"],
  sms: ["text"],
  voice: ["text"],
};

/** One parsed template file. */
export interface ParsedPart {
  /** Path as the operator knows it, for error messages. */
  readonly file: string;
  readonly template: Template[];
}

/** One template in one locale. */
export interface TemplateVariant {
  readonly templateId: string;
  /** Canonical BCP 47 tag, such as de-AT. */
  readonly locale: string;
  readonly parts: Readonly<Partial<Record<TemplatePart, ParsedPart>>>;
}

/** What a channel adapter needs from a template: subject and HTML for email only. */
export interface RenderedMessage {
  readonly subject?: string;
  readonly text: string;
  readonly html?: string;
}

/** A template failed to render, or does not exist for the channel; carries where, for the log. */
export class TemplateError extends Error {
  constructor(
    message: string,
    readonly templateId: string,
    readonly file?: string,
    readonly line = 0,
    readonly column = 0,
  ) {
    super(message);
    this.name = "TemplateError";
  }
}

/**
 * A render that ran out of time (liquid's renderLimit, TEMPLATE_LIMITS): a template whose work
 * grows too fast, or, at send time after \`check\` passed it, a busy machine.
 */
export class RenderTimeLimitError extends TemplateError {
  constructor(message: string, templateId: string, file?: string, line = 0, column = 0) {
    super(message, templateId, file, line, column);
    this.name = "RenderTimeLimitError";
  }
}

/** An SMS that does not fit channels.sms.maxSegments even with every name shortened. */
export class SmsOverCapError extends TemplateError {
  constructor(
    message: string,
    templateId: string,
    file: string | undefined,
    readonly segments: number,
    readonly maxSegments: number,
  ) {
    super(message, templateId, file);
    this.name = "SmsOverCapError";
  }
}

/** Validated templates, ready to render; built by loadTemplates and replaced whole on reload. */
export class TemplateSet {
  constructor(
    private readonly variants: ReadonlyMap<string, ReadonlyMap<string, TemplateVariant>>,
    /** Locale of last resort (the rules' defaults.locale, canonical). */
    readonly defaultLocale: string,
    /** Short content hash of every template file, for the start-up log and reload messages. */
    readonly version: string,
    private readonly engines: LiquidEngines,
  ) {}

  /** Template ids found under config/templates. */
  get templateIds(): string[] {
    return [...this.variants.keys()].sort();
  }

  /** The variant render would use: the customer's locale, then its parents, then the default. */
  pick(templateId: string, channel: Channel, locale: string | undefined): TemplateVariant {
    const byLocale = this.variants.get(templateId);
    if (!byLocale) throw new TemplateError(`no template ${templateId}`, templateId);
    for (const candidate of localeFallbacks(locale, this.defaultLocale)) {
      const variant = byLocale.get(candidate);
      if (variant && hasParts(variant, REQUIRED_PARTS[channel])) return variant;
    }
    throw new TemplateError(
      `template ${templateId} has no variant for ${channel} in ${localeFallbacks(locale, this.defaultLocale).join(", ")} (needs ${REQUIRED_PARTS[channel].join(" and ")})`,
      templateId,
    );
  }

  /** Renders a template for a channel in the customer's locale (falling back as pick does). */
  render(
    templateId: string,
    channel: Channel,
    locale: string | undefined,
    context: TemplateContext,
    options: RenderOptions = {},
  ): Promise<RenderedMessage> {
    return renderVariant(
      this.engines,
      this.pick(templateId, channel, locale),
      channel,
      context,
      options,
    );
  }

  /** Renders a variant's text part with other variables than a step's (the opt-out confirmation). */
  async renderText(variant: TemplateVariant, scope: object): Promise<string> {
    const text = renderPart(this.engines, variant, "text", scope);
    if (text === undefined) {
      throw new TemplateError(`${variant.locale} has no text part`, variant.templateId);
    }
    return tidyText(text);
  }

  /**
   * Renders an SMS within the segment cap: names from the purchase are shortened when the body is
   * too long (see fitSms). Throws an SmsOverCapError (a TemplateError) when even that is not enough.
   */
  renderSms(
    templateId: string,
    locale: string | undefined,
    context: TemplateContext,
    options: SmsOptions,
    /** What the render limit is measured in (RenderOptions.clock). */
    clock: RenderClock = "wall",
  ): Promise<string> {
    return renderSmsVariant(
      this.engines,
      this.pick(templateId, "sms", locale),
      context,
      options,
      clock,
    );
  }
}

/** What an SMS must fit, and whether it carries the opt-out line. */
export interface SmsOptions {
  /** channels.sms.maxSegments of the current rules. */
  readonly maxSegments: number;
  /** Append the opt-out line in the variant's language (the first SMS to a number). */
  readonly optOutLine: boolean;
}

/**
 * renderSms for a picked variant. All renders of one SMS share one render limit, so shortening
 * costs no more time than one render may.
 */
export async function renderSmsVariant(
  engines: LiquidEngines,
  variant: TemplateVariant,
  context: TemplateContext,
  options: SmsOptions,
  /** What the shared limit is measured in (RenderOptions.clock). */
  clock: RenderClock = "wall",
): Promise<string> {
  const now = clock === "cpu" ? cpuTimeMs : () => performance.now();
  const deadline = now() + TEMPLATE_LIMITS.renderLimit;
  const render = async (shortened: TemplateContext) => {
    const renderLimitMs = Math.max(0, deadline - now());
    const text = renderPart(engines, variant, "text", shortened, { renderLimitMs, clock });
    if (text === undefined) {
      throw new TemplateError(`${variant.locale} has no text part`, variant.templateId);
    }
    return tidyText(text);
  };
  const appendLine = options.optOutLine ? smsOptOutLine(variant.locale) : undefined;
  const fit = await fitSms(render, context, { maxSegments: options.maxSegments, appendLine });
  if (fit.ok) return fit.text;
  const withLine = appendLine === undefined ? "" : ` and the opt-out line "${appendLine}"`;
  throw new SmsOverCapError(
    `the SMS needs ${fit.segments} segments, over the cap of ${options.maxSegments} (channels.sms.maxSegments), even with every name from the purchase shortened to one character${withLine} (${describeSmsLength(fit.text)})`,
    variant.templateId,
    variant.parts.text?.file,
    fit.segments,
    options.maxSegments,
  );
}

/** Whether a variant has all the given parts. */
export function hasParts(variant: TemplateVariant, parts: readonly TemplatePart[]): boolean {
  return parts.every((part) => variant.parts[part] !== undefined);
}

/**
 * de-AT → [de-AT, de, <default>, <its language>]: the customer's locale from most to least
 * specific, then the default the same way (en-GB → en-GB, en). Absent or invalid → the default's.
 */
export function localeFallbacks(locale: string | undefined, defaultLocale: string): string[] {
  const chain: string[] = [];
  for (const tag of [locale, defaultLocale]) {
    const canonical = tag === undefined ? undefined : canonicalLocale(tag);
    if (!canonical) continue;
    const subtags = canonical.split("-");
    for (let length = subtags.length; length > 0; length--) {
      const candidate = subtags.slice(0, length).join("-");
      if (!chain.includes(candidate)) chain.push(candidate);
    }
  }
  return chain;
}

/**
 * The first of `candidates` in the language of a template variant, else the variant's locale: how
 * a message in that language writes dates and amounts (a customer in ar-EG who gets the English
 * template reads "12 March 2026" as the default en-GB writes it, not Arabic digits mid-sentence).
 */
export function localeInLanguageOf(
  variantLocale: string,
  ...candidates: readonly (string | undefined)[]
): string {
  const language = (tag: string) => tag.split("-")[0]?.toLowerCase();
  const wanted = language(variantLocale);
  return candidates.find((tag) => tag !== undefined && language(tag) === wanted) ?? variantLocale;
}

/** The canonical form of a BCP 47 tag (de-at → de-AT), or undefined when it is not one. */
export function canonicalLocale(tag: string): string | undefined {
  try {
    return Intl.getCanonicalLocales(tag)[0];
  } catch {
    return undefined;
  }
}

/**
 * What a render's time limit is measured in: wall time (liquid's own limit: at send time, where a
 * render that runs out of time is tried again later), or the process's CPU time (`cpu`: `check`
 * and every worker's start, whose verdict on a template stands). On a loaded machine (load 15 on
 * 2 cores) wall time runs several times ahead of the work done, and a good template failed there.
 */
export type RenderClock = "wall" | "cpu";

/** Options of one render: a lower render limit than the engines', to share one budget. */
export interface RenderOptions {
  /** Milliseconds this render may take; the engines' renderLimit when absent. */
  readonly renderLimitMs?: number;
  /** What those milliseconds are measured in; wall time when absent. */
  readonly clock?: RenderClock;
}

/** The process's CPU time (ms): what rendering cost, however busy the machine is. */
export function cpuTimeMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/** liquid's Limiter words it so; toTemplateError knows a render that ran out of time by it. */
const RENDER_LIMIT_MESSAGE = "template render limit exceeded";

/**
 * liquid's render limit in CPU time: liquid asks it before every node it renders (as it asks its
 * own, which reads the wall clock). The CPU time is a system call to read, so it is read at most
 * once per millisecond.
 */
class CpuTimeLimit {
  private nextRead = Number.NEGATIVE_INFINITY;
  constructor(private readonly deadline: number) {}
  use(): void {}
  check(): void {
    const now = performance.now();
    if (now < this.nextRead) return;
    this.nextRead = now + 1;
    assert(cpuTimeMs() <= this.deadline, RENDER_LIMIT_MESSAGE);
  }
}

/**
 * Renders one part of a variant, untidied; undefined when the variant has no such part. Templates
 * read no files and use no asynchronous filters, so rendering is synchronous: the render limit
 * then bounds this render's own work, not the work of others interleaved with it. The output is
 * bounded too (OUTPUT_LIMIT).
 */
export function renderPart(
  engines: LiquidEngines,
  variant: TemplateVariant,
  part: TemplatePart,
  /** The variables: a TemplateContext, or the opt-out confirmation's. */
  context: object,
  options: RenderOptions = {},
): string | undefined {
  const parsed = variant.parts[part];
  if (!parsed) return undefined;
  const engine = part === "html" ? engines.html : engines.text;
  const scope = context as unknown as Record<string, unknown>;
  const limitMs = options.renderLimitMs;
  try {
    const cpu = options.clock === "cpu";
    const ctx = new Context(
      scope,
      engine.options,
      { sync: true, ...(!cpu && limitMs !== undefined && { renderLimit: limitMs }) },
      {
        liquid: engine,
        ...(cpu && {
          renderLimit: new CpuTimeLimit(
            cpuTimeMs() + (limitMs ?? TEMPLATE_LIMITS.renderLimit),
          ) as unknown as Context["renderLimit"],
        }),
      },
    );
    return String(
      toValueSync(engine.renderer.renderTemplates(parsed.template, ctx, new LimitedOutput(ctx))),
    );
  } catch (error) {
    throw toTemplateError(error, variant.templateId, parsed.file);
  }
}

/**
 * Renders one variant's parts for a channel. Text and subject are not escaped; HTML is. Output is
 * tidied the way mail clients and phones show it: a one-line subject, no runs of blank lines.
 */
export async function renderVariant(
  engines: LiquidEngines,
  variant: TemplateVariant,
  channel: Channel,
  context: TemplateContext,
  options: RenderOptions = {},
): Promise<RenderedMessage> {
  const parts = CHANNEL_PARTS[channel];
  const run = (part: TemplatePart) =>
    parts.includes(part) ? renderPart(engines, variant, part, context, options) : undefined;
  const subject = run("subject");
  const text = run("text");
  const html = run("html");
  if (text === undefined) {
    throw new TemplateError(`${variant.locale} has no text part`, variant.templateId);
  }
  return {
    ...(subject !== undefined && { subject: tidySubject(subject) }),
    text: tidyText(text),
    ...(html !== undefined && { html: html.trim() }),
  };
}

/** A subject on one line, as mail clients show it. */
function tidySubject(subject: string): string {
  return subject.replace(/\s+/g, " ").trim();
}

/** Text as phones and mail clients show it: no trailing spaces, no runs of blank lines. */
export function tidyText(text: string): string {
  return text
    .split("\n")
    .map((line) => line.trimEnd())
    .join("\n")
    .replace(/\n{3,}/g, "\n\n")
    .trim();
}

/** Turns a liquidjs error into a TemplateError with file, line and column, message without them. */
export function toTemplateError(error: unknown, templateId: string, file: string): TemplateError {
  if (error instanceof TemplateError) return error;
  const token = (error as { token?: { getPosition?: () => number[] } }).token;
  const [line = 0, column = 0] = token?.getPosition?.() ?? [];
  const raw = error instanceof Error ? error.message : String(error);
  const message = raw.replace(/(, file:.*?)?, line:\d+, col:\d+$/, "");
  // liquid's Limiter words it so, and has no error class of its own.
  return message.startsWith(RENDER_LIMIT_MESSAGE)
    ? new RenderTimeLimitError(message, templateId, file, line, column)
    : new TemplateError(message, templateId, file, line, column);
}
