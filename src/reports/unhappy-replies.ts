/**
 * Spots check-in replies an owner should read themselves: a low score or words of complaint, in
 * English or German. Deliberately simple and explainable: every flag says which cue it saw.
 */

/** Whether a reply looks unhappy, and the cue that made it so in plain words. */
export interface ReplyJudgement {
  readonly unhappy: boolean;
  /** "score 2 of 10", "mentions “broken”", or both joined by "; "; null when not unhappy. */
  readonly why: string | null;
}

/** Flags a check-in reply that gives a low score or complains, so the owner can step in. */
export function judgeReply(text: string): ReplyJudgement {
  const normal = normalise(text);
  const reasons: string[] = [];
  const score = lowScore(normal);
  if (score !== undefined) reasons.push(`score ${formatNumber(score.value)} of ${score.scale}`);
  const cue = complaint(normal);
  if (cue !== undefined) reasons.push(`mentions “${cue}”`);
  return reasons.length === 0
    ? { unhappy: false, why: null }
    : { unhappy: true, why: reasons.join("; ") };
}

/** Long replies are judged by their start: a complaint is rarely buried after this. */
const JUDGED_LENGTH = 4_000;
/** Where a quoted earlier message starts in an email reply. */
const QUOTE_START =
  /^(?:On .{1,200} wrote:|Am .{1,200} schrieb .{1,200}:|-{2,} ?(?:Original Message|Ursprüngliche Nachricht) ?-{2,})\s*$/imu;

function normalise(text: string): string {
  const quoteAt = text.search(QUOTE_START);
  return (quoteAt === -1 ? text : text.slice(0, quoteAt))
    .slice(0, JUDGED_LENGTH)
    .split("\n")
    .filter((line) => !line.trimStart().startsWith(">"))
    .join("\n")
    .normalize("NFC")
    .replace(/[’‘`´]/g, "'")
    .replace(/\s+/g, " ")
    .trim();
}

interface Score {
  readonly value: number;
  readonly scale: 5 | 10;
}

const NUMBER = String.raw`(\d{1,2}(?:[.,]\d)?)`;
/** Not part of a longer number, date or fraction (`2026/3/5`, `1.3/5`). */
const NUMBER_START = String.raw`(?<![\d/]|\d[.,])`;
const WORD_END = String.raw`(?![\p{L}\p{N}])`;
/** Words that may follow a score without making it a count ("3 of 10 because …"). */
const JOINERS = "because|and|but|as|since|weil|und|aber|da|denn";
const STAR_WORDS = "(?:stars?|sterne?n?|points?|punkte?n?|pts)";

/** `2/10`, `3 / 5 stars`: a slash score, unless it continues as a date (`3/5/2026`). */
const SLASH_SCORE = new RegExp(
  String.raw`${NUMBER_START}${NUMBER}\s?/\s?(10|5)(?![\d/]|[.,]\d)`,
  "gu",
);
/** `3 of 10`, `2 out of 5`, `3 von 10`, but not `2 of 5 items` (a count, not a score). */
const WORDED_SCORE = new RegExp(
  String.raw`${NUMBER_START}${NUMBER} (?:out of|of|von|aus) (10|5)(?= (?:${STAR_WORDS}|${JOINERS})${WORD_END}|\s*(?:[^\s\p{L}\p{N}]|$))`,
  "giu",
);
const NUMBER_WORDS: Readonly<Record<string, number>> = {
  one: 1,
  two: 2,
  three: 3,
  four: 4,
  five: 5,
  ein: 1,
  einen: 1,
  eins: 1,
  zwei: 2,
  drei: 3,
  vier: 4,
  fünf: 5,
  zero: 0,
  null: 0,
};
/** `1 star`, `one star`, `2-Sterne`: out of 5, unless it is the scale of `2 of 5 stars`. */
const STAR_COUNT = new RegExp(
  String.raw`(?<!(?:of|von|aus|/)\s?)(?<![\p{L}\p{N}.,])(${NUMBER.slice(1, -1)}|${Object.keys(NUMBER_WORDS).join("|")})[ -]?(?:stars?|sterne?n?)${WORD_END}`,
  "giu",
);
/** `★★☆☆☆`, `⭐⭐`: filled stars out of 5. */
const STAR_GLYPHS = /(?:[★⭐]\uFE0F?)+/gu;
/** The whole reply is a number, or starts with one set off by punctuation: `2`, `3 - meh`, `8. Fine`. */
const LEADING_SCORE = new RegExp(String.raw`^${NUMBER}\s?(?:$|[-–—:;,!?)]|\.(?!\d))`, "u");
/** `score 3`, `rating: 4`, `I'd give it a 2`, `Bewertung 3`. */
const LABELLED_SCORE = new RegExp(
  String.raw`(?<![\p{L}])(?:score|rating|rated|bewertung|(?:give|rate) (?:it|you|this|them|us) (?:an? )?)\s?(?:is |was |of |ist |von )?[:=]?\s?${NUMBER}(?![\d/]|[.,]\d| ?(?:out of|of|von|aus|/)${WORD_END})`,
  "giu",
);

function lowScore(text: string): Score | undefined {
  for (const score of scores(text)) {
    if (score.value <= (score.scale === 10 ? 5 : 2)) return score;
  }
  return undefined;
}

function* scores(text: string): Generator<Score> {
  for (const match of text.matchAll(SLASH_SCORE)) yield* asScore(match[1], match[2]);
  for (const match of text.matchAll(WORDED_SCORE)) yield* asScore(match[1], match[2]);
  for (const match of text.matchAll(STAR_COUNT)) {
    const word = match[1]?.toLowerCase() ?? "";
    yield* asScore(String(NUMBER_WORDS[word] ?? word), "5");
  }
  for (const match of text.matchAll(STAR_GLYPHS)) {
    const filled = [...match[0].replace(/\uFE0F/g, "")].length;
    if (filled <= 5) yield { value: filled, scale: 5 };
  }
  const leading = LEADING_SCORE.exec(text);
  if (leading) yield* asScore(leading[1], "10");
  for (const match of text.matchAll(LABELLED_SCORE)) yield* asScore(match[1], "10");
}

function* asScore(raw: string | undefined, scaleText: string | undefined): Generator<Score> {
  const value = Number((raw ?? "").replace(",", "."));
  const scale = scaleText === "5" ? 5 : 10;
  if (raw !== undefined && Number.isFinite(value) && value >= 0 && value <= scale) {
    yield { value, scale };
  }
}

function formatNumber(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

/**
 * A cue is a regular-expression source matched at word boundaries. Negatable cues are not counted
 * after a negation ("no problem", "not bad", "kein Problem", "nichts kaputt") or when followed by
 * a fix ("problem solved"); phrases that carry their own negation ("doesn't work") are not.
 */
interface Cue {
  readonly source: string;
  readonly negatable: boolean;
}

const negatable = (...sources: string[]): Cue[] =>
  sources.map((source) => ({ source, negatable: true }));
const fixed = (...sources: string[]): Cue[] =>
  sources.map((source) => ({ source, negatable: false }));

const CUES: readonly Cue[] = [
  // English phrases that already contain their negation.
  ...fixed(
    "(?:does|do|did|is|was|are|were|has|have|wo|ca)(?:n'?t| not) (?:even )?(?:work|working|function|functioning|arrive|arrived|fit|fits|turn on|switch on|charge)",
    "(?:not|never|stopped|stops|quit) (?:working|functioning|arrived|charging)",
    "never (?:arrived|came|received|got it)",
    "(?:not|never|nicht) (?:happy|satisfied|pleased|impressed|zufrieden|gut|empfehlenswert)",
    "never again",
    "waste of (?:money|time)",
    "still waiting",
    "rip-?off",
  ),
  // German phrases that already contain their negation.
  ...fixed(
    String.raw`funktionier(?:t|en|te|ten)(?: \p{L}+){0,2} nicht`,
    String.raw`geht(?: \p{L}+){0,2} nicht (?:mehr|an)`,
    "nie wieder",
    "nie angekommen|nicht angekommen|noch nicht (?:da|angekommen|geliefert)",
    String.raw`(?:gebe|geben|schicke|schicken|sende|senden)(?: \p{L}+){0,3} zurück`,
    "geld zurück",
  ),
  // English words of complaint.
  ...negatable(
    "broken|broke|breaks",
    "faulty|defect|defects|defective",
    "damaged|damage",
    String.raw`(?:return|returning|returned)(?! (?:to|for|again|customer|visit)\b)`,
    "refund|refunds|refunded",
    "disappointed|disappointing|disappointment",
    "terrible|terribly|awful|horrible|dreadful|useless|worst",
    // German "Bad" is a bathroom: "passt perfekt ins Bad".
    "(?<!(?:das|im|ins|fürs|vom|zum|dem|ein|neues|mein|unser) )(?:bad|badly)|poor|poorly",
    "problem|problems|problematic",
    "issue|issues",
    "complaint|complaints|complain",
    "angry|annoyed|furious|upset|frustrated|frustrating",
    "unhappy|dissatisfied|unsatisfied",
    "missing|scam",
  ),
  // German words of complaint, with their common endings.
  ...negatable(
    "kaputt(?:e|en|er|es)?",
    "defekt(?:e|en|er|es)?",
    "beschädigt(?:e|en|er|es)?|schaden",
    "zurückgeben|zurückschicken|zurücksenden|zurückgeschickt|zurückgesendet",
    "rückgabe|rücksendung|rückerstattung|erstattung",
    "enttäuscht(?:e|en|er|es)?|enttäuschend(?:e|en|er|es)?|enttäuschung",
    "schlecht(?:e|en|er|es)?|mies(?:e|en|er|es)?|miserabel|mangelhaft(?:e|en|er|es)?",
    "furchtbar(?:e|en|er|es)?|schrecklich(?:e|en|er|es)?|katastrophal|katastrophe|schrott",
    "problem|probleme|problemen",
    "reklamation|reklamieren|beschwerde|beschweren|beanstandung|beanstandungen",
    "verärgert|ärgerlich|sauer|wütend|unzufrieden",
    String.raw`(?:fehlt|fehlen)(?! (?:nichts|nicht|kein\p{L}*))|fehlend(?:e|en|er|es)?`,
  ),
  ...fixed("👎", "😡", "😠", "🤬"),
];

const CUE_PATTERNS = CUES.map((cue) => ({
  cue,
  pattern: new RegExp(String.raw`(?<![\p{L}\p{N}'])(?:${cue.source})(?![\p{L}\p{N}])`, "giu"),
}));

const NEGATORS = [
  "no",
  "not",
  "never",
  "without",
  "nothing",
  "none",
  "hardly",
  "zero",
  String.raw`\p{L}+n't`,
  "dont|doesnt|didnt|isnt|wasnt|arent|werent|havent|hasnt|hadnt|wont|cant|couldnt|wouldnt|cannot",
  "kein(?:e|en|em|er|es)?",
  "nicht|nichts|nie|niemals|ohne",
].join("|");
/** Small words that may stand between a negation and what it negates ("not at all bad"). */
const FILLERS = [
  "a|an|any|the|too|so|that|very|really|real|big|major|single|slightest|at|all|even|one|of|it",
  "was|were|is|are|had|have|has|got|get|need|reason|to|be|much|more|such|whatsoever",
  "ein|eine|einen|einem|einer|zu|sehr|wirklich|gar|so|große|großen|großes|irgendein|irgendwelche",
  "them|they|these|those|i|we|you|my|our|your|items?|parts?|things?|products?",
  "war|waren|ist|sind|hatte|hatten|gab|es|mehr|besonders|allzu|mich|uns|grund|zum|zur",
].join("|");
const NEGATED_BEFORE = new RegExp(
  String.raw`(?<![\p{L}\p{N}'])(?:${NEGATORS})(?: (?:${FILLERS})){0,4} $`,
  "iu",
);
/** "problem solved", "issue was fixed quickly", "Problem wurde gelöst"; not "problem not solved". */
const FIXED_AFTER =
  /^ (?:(?!(?:not|never|nicht|nie|noch|still|yet) )\p{L}+ ){0,2}(?:solved|resolved|fixed|sorted|gelöst|behoben|erledigt)(?![\p{L}])/iu;
/** Where a negation stops reaching: punctuation or a turn like "but". */
const CLAUSE_BREAK =
  /.*(?:[.,;:!?()\n–—]| - |\b(?:but|however|although|aber|jedoch|sondern|trotzdem)\b)/isu;

function complaint(text: string): string | undefined {
  let first: { index: number; words: string } | undefined;
  for (const { cue, pattern } of CUE_PATTERNS) {
    for (const match of text.matchAll(pattern)) {
      const index = match.index;
      if (first !== undefined && index >= first.index) break;
      if (cue.negatable && isNegated(text, index, index + match[0].length)) continue;
      first = { index, words: match[0] };
      break;
    }
  }
  return first?.words;
}

/** How far back a negation can stand: a negator and a few small words. */
const NEGATION_REACH = 80;

function isNegated(text: string, start: number, end: number): boolean {
  let before = text.slice(Math.max(0, start - NEGATION_REACH), start);
  if (start > NEGATION_REACH) before = before.slice(before.indexOf(" ") + 1);
  const clause = before.replace(CLAUSE_BREAK, "");
  return NEGATED_BEFORE.test(` ${clause}`) || FIXED_AFTER.test(text.slice(end));
}
