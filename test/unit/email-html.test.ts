import { readdir } from "node:fs/promises";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadRules } from "../../src/config/load-rules.js";
import type { RuleSet } from "../../src/domain/rules.js";
import { loadTemplates } from "../../src/templates/load-templates.js";
import { type SampleKind, sampleTemplateContext } from "../../src/templates/template-context.js";
import type { TemplateSet } from "../../src/templates/template-set.js";

const TEMPLATES_DIR = path.join("config", "templates");

/**
 * The hidden preheader of every shipped HTML email: the message's first line after the greeting,
 * as the inbox preview shows it next to the subject. With the full sample (a named customer who
 * bought at Northgate High Street) and the sparse one (no name, no store).
 */
const PREHEADERS: Record<string, Record<SampleKind, string>> = {
  "thank-you/en": {
    full: "Thank you for shopping with us at Northgate High Street.",
    sparse: "Thank you for shopping with us.",
  },
  "thank-you/de": {
    full: "Vielen Dank für Ihren Einkauf bei Northgate High Street.",
    sparse: "Vielen Dank für Ihren Einkauf.",
  },
  "accessories-discount/en": {
    full: "We hope you are enjoying what you bought at Northgate High Street.",
    sparse: "We hope you are enjoying what you bought.",
  },
  "accessories-discount/de": {
    full: "Wir hoffen, Sie haben Freude an Ihrem Einkauf bei Northgate High Street.",
    sparse: "Wir hoffen, Sie haben Freude an Ihrem Einkauf.",
  },
  "loyalty-discount/en": {
    full: "You have shopped with us at Northgate High Street a few times now.",
    sparse: "You have shopped with us a few times now.",
  },
  "loyalty-discount/de": {
    full: "Sie haben schon einige Male bei Northgate High Street eingekauft.",
    sparse: "Sie haben schon einige Male bei uns eingekauft.",
  },
};

/** `<template>/<locale>` of every shipped `*.html.liquid`, found on disk. */
async function shippedHtmlTemplates(): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(TEMPLATES_DIR, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    for (const file of await readdir(path.join(TEMPLATES_DIR, entry.name))) {
      const match = /^([^.]+)\.html\.liquid$/.exec(file);
      if (match) found.push(`${entry.name}/${match[1]}`);
    }
  }
  return found.sort();
}

/** Text as a mail client shows it: liquid's escapes and the entities the templates use, decoded. */
function decode(html: string): string {
  return html
    .replace(/&#(\d+);/g, (_, code: string) => String.fromCodePoint(Number(code)))
    .replace(/&nbsp;/g, "\u00a0")
    .replace(/&zwnj;/g, "\u200c")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"')
    .replace(/&amp;/g, "&");
}

/** The declarations of an inline style, `name: value` with spaces normalised. */
function declarations(style: string): string[] {
  return style
    .split(";")
    .map((declaration) => declaration.trim().replace(/\s*:\s*/, ": "))
    .filter(Boolean);
}

let rules: RuleSet;
let templates: TemplateSet;
beforeAll(async () => {
  const loadedRules = await loadRules("config");
  if (!loadedRules.ok) throw new Error(JSON.stringify(loadedRules.problems));
  rules = loadedRules.rules;
  const loaded = await loadTemplates("config", rules);
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems, null, 2));
  templates = loaded.templates;
});

/** Renders a shipped email as a step of the shipped rules would, with a sample purchase. */
async function render(id: string, sample: SampleKind) {
  const [templateId = "", locale = ""] = id.split("/");
  const step = rules.rules.flatMap((rule) => rule.steps).find((s) => s.template === templateId);
  if (!step) throw new Error(`no rule step of the shipped rules sends ${templateId}`);
  expect(templates.pick(templateId, "email", locale).locale).toBe(locale);
  const context = sampleTemplateContext({
    step: { kind: step.kind, channel: "email" },
    locale,
    kind: sample,
    currency: rules.defaults.currency,
    timezone: rules.defaults.timezone,
    shop: { name: rules.shopName, address: rules.shopAddress },
  });
  const rendered = await templates.render(templateId, "email", locale, context);
  if (rendered.html === undefined) throw new Error(`${id} rendered no HTML`);
  return { locale, context, subject: rendered.subject ?? "", html: rendered.html };
}

describe("shipped HTML emails", () => {
  it("are the ones this test knows a preheader for", async () => {
    expect(await shippedHtmlTemplates()).toEqual(Object.keys(PREHEADERS).sort());
  });

  const cases = Object.keys(PREHEADERS).flatMap((id) =>
    (["full", "sparse"] as const).map((sample) => ({ id, sample })),
  );

  describe.each(cases)("$id with the $sample sample", ({ id, sample }) => {
    it("is a whole document in the template's language, with a head", async () => {
      const { locale, html } = await render(id, sample);
      expect(html).toMatch(/^<!doctype html>\n<html lang="([^"]+)">\n<head>\n/i);
      expect(/<html lang="([^"]+)">/.exec(html)?.[1]).toBe(locale);
      const head = /<head>([\s\S]*?)<\/head>\s*<body[ >]/.exec(html)?.[1];
      expect(head).toBeDefined();
      expect(head).toContain('<meta charset="utf-8">');
      expect(head).toContain(
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
      );
      expect(html.match(/<head>/g)).toHaveLength(1);
      expect(html.match(/<body[ >]/g)).toHaveLength(1);
      expect(html.trimEnd()).toMatch(/<\/body>\n<\/html>$/);
    });

    it("has the subject as its title", async () => {
      const { subject, html } = await render(id, sample);
      const titles = [...html.matchAll(/<title>([^<]*)<\/title>/g)].map((m) => decode(m[1] ?? ""));
      expect(subject).not.toBe("");
      expect(titles).toEqual([subject]);
    });

    it("opens with a hidden preheader: the first line of the message", async () => {
      const { html } = await render(id, sample);
      const afterBody = html.slice(html.search(/<body[ >]/));
      const preheader = /^<body[^>]*>\s*<div style="([^"]*)">([^<]*)<\/div>/.exec(afterBody);
      expect(preheader).not.toBeNull();
      expect(declarations(preheader?.[1] ?? "")).toEqual(
        expect.arrayContaining([
          "display: none",
          "max-height: 0",
          "max-width: 0",
          "overflow: hidden",
          "opacity: 0",
          "mso-hide: all",
        ]),
      );
      const text = decode(preheader?.[2] ?? "");
      // Padding after the text keeps clients from running the body on into the preview.
      const padding = /[\u034f\u200c\u00a0]+$/.exec(text)?.[0] ?? "";
      expect(padding.length).toBeGreaterThanOrEqual(60);
      expect(text.slice(0, text.length - padding.length)).toBe(PREHEADERS[id]?.[sample]);
    });

    it("lays the message out in one centred container of at most 600px, inline styles only", async () => {
      const { context, html } = await render(id, sample);
      const containers = [...html.matchAll(/<table ([^>]*)>/g)].filter((m) =>
        /max-width:\s*600px/.test(m[1] ?? ""),
      );
      expect(containers).toHaveLength(1);
      const attributes = containers[0]?.[1] ?? "";
      expect(attributes).toContain('role="presentation"');
      expect(attributes).toContain('align="center"');
      expect(declarations(/style="([^"]*)"/.exec(attributes)?.[1] ?? "")).toEqual(
        expect.arrayContaining(["width: 100%", "max-width: 600px", "margin: 0 auto"]),
      );
      // Everything the reader sees is inside it.
      const start = containers[0]?.index ?? -1;
      const end = html.lastIndexOf("</table>");
      const firstParagraph = html.indexOf("<p");
      const lastParagraph = html.lastIndexOf("</p>");
      expect(start).toBeGreaterThan(html.indexOf("</div>"));
      expect(firstParagraph).toBeGreaterThan(start);
      expect(lastParagraph).toBeLessThan(end);
      // Many clients drop <style> and classes; Outlook gets a fixed 600px table of its own.
      expect(html).not.toMatch(/<style|<link|class="/i);
      expect(html).toMatch(/<!--\[if mso\]><table role="presentation" width="600" align="center"/);
      expect(html.match(/<table[ >]/g)).toHaveLength(2);
      // What the message showed before stays: the shop's address and the unsubscribe link.
      const inside = decode(html.slice(start, end));
      if (context.discount !== null) {
        for (const line of context.shop.addressLines) expect(inside).toContain(line);
        if (context.unsubscribeUrl !== null)
          expect(inside).toContain(`<a href="${context.unsubscribeUrl}">`);
      }
      for (const item of context.order.items) expect(inside).toContain(item.name);
    });
  });
});
