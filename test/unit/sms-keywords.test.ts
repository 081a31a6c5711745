import { describe, expect, it } from "vitest";
import {
  inboundSmsKeyword,
  isProviderConfirmedOptOut,
  isTwilioOptOut,
  smsKeyword,
} from "../../src/domain/sms-keywords.js";

/** Replies that ask for the messages to end. */
const OPT_OUTS: readonly string[] = [
  // The bare keywords, any case and punctuation.
  "STOP",
  "stop",
  "stop.",
  "STOP!!!",
  "Unsubscribe",
  "END",
  "END.",
  "Quit",
  "REVOKE",
  "STOPALL",
  "stop all",
  "cancel",
  "opt-out",
  "Opt out",
  "OPTOUT",
  "S T O P",
  // Disguised by emoji, fullwidth or styled letters, invisible characters.
  "🛑 STOP",
  "STOP 🛑🛑",
  "⛔️ stop",
  "ＳＴＯＰ",
  "ＳＴＯＰ　ＰＬＥＡＳＥ",
  "𝐒𝐓𝐎𝐏",
  "S\u200BTOP",
  "STOP\u200D",
  "\uFEFFSTOP",
  "ST\u2060OP",
  "ST\u200COP",
  // Cyrillic or Greek letters that look Latin.
  "S\u0422\u041EP",
  "\u0405\u0422\u041E\u0420",
  "UNSUBSCRIB\u0415",
  "\u0395\u039DD",
  "St\u043E\u0440 please",
  // Small capitals, and letters in squares or circles (plain or negative), as emoji keyboards
  // and "fancy text" generators write them.
  "ꜱᴛᴏᴘ",
  "ᴜɴꜱᴜʙꜱᴄʀɪʙᴇ",
  "ꜱᴛᴏᴘ ᴘʟᴇᴀꜱᴇ",
  "🅂🅃🄾🄿",
  "🆂🆃🅾🅿",
  "🆂🆃🅾\uFE0F🅿\uFE0F",
  "ⓈⓉⓄⓅ",
  "ⓢⓣⓞⓟ",
  "🅢🅣🅞🅟",
  "🄴🄽🄳",
  // French, as Canada requires, as the whole message.
  "ARRET",
  "Arrêt",
  // Other languages' usual keywords, as the whole message (accents optional).
  "BAJA",
  "Baja.",
  "darme de baja",
  "PARAR",
  "Cancelar",
  "desuscribir",
  "Désabonner",
  "desinscrire",
  "DÉSINSCRIPTION",
  "Basta",
  "basta!",
  "disiscrivimi",
  "CANCELLAMI",
  "sair",
  "Descadastrar",
  "AFMELDEN",
  "uitschrijven",
  // Spanish ALTO (Spanish for STOP), French ARRÊTE, ARRÊTEZ and ARRETT, NO MÁS / NO MORE and
  // REMOVE, as the whole message, with punctuation, emoji or a "please" or "thanks" around it.
  "Alto",
  "ALTO.",
  "¡Alto!",
  "alto 🛑",
  "Alto por favor",
  "Arrête",
  "arrete!",
  "ARRÊTEZ SVP",
  "ARRETT",
  "No más",
  "no mas por favor",
  "No more",
  "NO MORE!!",
  "No more please",
  "Remove",
  "REMOVE.",
  "Remove please",
  "Parar por favor",
  "Basta grazie",
  "Stopp bitte",
  // ... with more than one "please" or "thanks", said twice, or above a phone's signature.
  "Alto por favor gracias",
  "Alto, por favor, gracias",
  "Arrêtez svp merci",
  "Arrête s'il te plaît",
  "No more please thank you",
  "Alto alto",
  "ALTO ALTO ALTO",
  "Arrête arrête",
  "Alto\nEnviado desde mi iPhone",
  "Arrête\nEnvoyé de mon iPhone",
  "Remove\n\nSent from my iPhone",
  "No más\nEnviado desde mi Samsung Galaxy",
  // Spanish, French and German ways of asking for no more messages, in a sentence.
  "No más mensajes",
  "No mas mensajes por favor",
  "Ya no me envíen más mensajes",
  "No me manden más mensajes",
  "Dejen de enviarme mensajes",
  "Por favor dejen de llamarme",
  "No me mandes nada más, gracias",
  "No quiero recibir más mensajes",
  "Je ne veux plus de messages",
  "Je ne veux plus recevoir vos SMS",
  "Quiero darme de baja",
  "Arrêtez de m'envoyer des messages",
  "Arrête de m’écrire svp",
  "Ne m'envoyez plus de messages",
  "Merci de ne plus m'envoyer de SMS",
  "Hör auf",
  "Hören Sie auf!",
  "Ya basta",
  // UNSUB, short for UNSUBSCRIBE, as a keyword.
  "unsub",
  "UNSUB!",
  "Unsub me",
  "unsub please",
  "How do I unsub?",
  // The stop sign 🛑 alone, repeated, with a "please", as a sentence of its own, in a phrase.
  "🛑",
  "🛑\uFE0F",
  "🛑🛑🛑",
  "🛑 please",
  "🛑!",
  "Love the TV. 🛑",
  "🛑 texting me",
  // Trailing punctuation and emoji on a keyword.
  "stop!!!",
  "STOP.",
  "Stop 🙏",
  "STOP❗",
  "Unsubscribe 👋",
  "Cancel?",
  "quit!",
  "End.",
  // A leading keyword, whatever follows.
  "Stop please",
  "stop thanks",
  "Stop it",
  "unsubscribe me",
  "opt out please",
  "Cancel my messages",
  "Cancel my subscription",
  "Stop sending me deals",
  // STOP first is taken at its word, also when what follows is about the order.
  "Stop the deliveries",
  // A later sentence that is only a keyword.
  "Love the TV. Stop.",
  "Thanks! STOP",
  "Love the TV; stop",
  "Stop. By the way, love it",
  // Clear phrases anywhere.
  "Please stop texting me",
  "stop texting me",
  "Stop sending me messages",
  "Quit texting me",
  "Can you please stop?",
  "Don't text me again",
  "don’t text me again",
  "No more texts please",
  "I don't want any more messages",
  "How do I unsubscribe?",
  "I want to opt out",
  "Unsubscribe from these texts",
  "Opt me out of this",
  "I already unsubscribed",
  "I revoke my consent",
  "remove me",
  "Remove me from your list",
  "Take me off your list",
  "Leave me alone",
  // Calls as well as texts, and a repeated stop.
  "Do not text or call me",
  "Don't call me again",
  "No more calls please",
  "Stop calling me",
  "don't send me any more texts",
  "I said stop",
  "I told you stop!",
  "Never call me again",
  // German.
  "Stopp",
  "STOPP!",
  "ABMELDEN",
  "abbestellen",
  "keine SMS mehr",
  "Bitte keine SMS mehr",
  "bitte keine Nachrichten mehr",
  "Keine weiteren Nachrichten bitte",
  "Ich möchte mich abmelden",
  "Bitte melden Sie mich ab",
  "Bitte schreiben Sie mir nicht mehr",
  "Stoppen Sie die Nachrichten",
  "Hören Sie auf, mir zu schreiben",
  "Bitte nicht mehr anrufen",
  "Keine Anrufe mehr",
  "Rufen Sie mich nicht mehr an",
  "Hören Sie auf, mich anzurufen",
  "Hör auf, mich anzurufen!",
  "Lassen Sie mich in Ruhe",
];

/** Replies to "Is all well with your new TV?" that the owner should read: no opt-out. */
const REPLIES: readonly string[] = [
  // A phone's signature is not the customer's words, nor is a "please" or a word said twice.
  "Sent from my iPhone",
  "All good thanks\nSent from my iPhone",
  "Please please",
  "No no, all good",
  "¿No me mandan el manual?",
  "No, no me envíen nada, ya lo tengo",
  "Dejen de mandarme el paquete equivocado",
  "No quiero que dejen de enviarme mensajes",
  "No más problemas desde la actualización",
  "Ne m'envoyez plus le colis à l'ancienne adresse",
  "Hör auf zu zweifeln, der Fernseher ist super",
  // Enclosed letters used as emoji, not spelling a keyword.
  "Parking was easy 🅿️, the TV is great",
  "Blood type 🅰️, not that you asked. Love the TV",
  "Ⓜ️ station is next to the shop, stop by again",
  "All good thanks",
  // Not an opt-in either: only a message that is exactly YES opts in, as before this change.
  "Yes love it",
  "Quite happy",
  "endlich da",
  // Other languages' keywords only as the whole message: within a sentence they are replies.
  "La calidad de imagen es baja",
  "No puedo parar de verla",
  "Basta poco per montarlo",
  "Sair do modo demo como?",
  "El volumen está muy alto",
  "Alto contraste activado, perfecto",
  "Remove the stand first?",
  "How do I remove the stand?",
  "No more problems since the update",
  "No more buzzing since the update, thanks",
  // Other emoji than the stop sign: to "Is all well?" they can be a "no", for the owner to read.
  "⛔",
  "🚫",
  "✋",
  // The stop sign leading a message that goes on: an alarm, not a request.
  "🛑 TV broken!!",
  "🛑 Screen went black after a week",
  // CANCEL, END and QUIT inside a question about the order: for the owner.
  "Can I cancel my order?",
  "Can I cancel?",
  "How do I cancel the delivery?",
  "I want to cancel my order",
  "Don't stop the deliveries",
  "Thanks, stop",
  "When does the warranty end?",
  "My kids would never quit playing with it",
  "I had to unsub from my streaming service to afford it",
  "Lassen Sie mich in Ruhe überlegen, ob ich ihn behalte",
  "Lass mich in Ruhe testen, ich melde mich",
  // Negations.
  "don't stop",
  "do not stop",
  "never stop",
  "nicht stoppen",
  "Bitte nicht abmelden",
  "Please don't stop the offers",
  "Don't stop texting me, I like the tips",
  // A keyword inside a sentence, in another sense.
  "I can't stop watching it",
  "I can't stop smiling",
  "Will you stop by?",
  "Could you please stop by the shop tomorrow?",
  "It won't stop buzzing",
  "The remote won't stop beeping. Help?",
  "The end of the cable is loose",
  "Can I opt out of the extended warranty?",
  "I had to unsubscribe from my streaming service to afford it",
  "No more problems since the update",
  "Ich habe keine SMS bekommen",
  "Oh, stop, you're making me blush",
  "Please call me about the warranty",
  "Can you call me back?",
  "I didn't get a call",
  "The delivery driver didn't call me",
  "Bitte rufen Sie mich an",
  // A leading keyword that is plainly another verb.
  "stop by the store tomorrow?",
  "Stop by anytime!",
  "End of the cable came loose",
  "Quit working after a week",
  "Cancel my order please",
  // Other words that start like keywords.
  "The picture stops sometimes",
  "Stopped working after two days",
  "cancelled my other order but this one is great",
  "Start again?",
  // Other scripts stay what they say.
  "Всё хорошо, спасибо",
  "Τέλος καλό, όλα καλά",
  // ARRET only as the whole message.
  "Arrêt de l'écran après deux jours",
];

/** Replies that opt back in. */
const OPT_INS: readonly string[] = [
  "START",
  "START\nSent from my iPhone",
  "start",
  "ＳＴＡＲＴ",
  "start 🙂",
  "UNSTOP",
  "S T A R T",
];

/** YES: back in only if the number opted out; otherwise an answer to "Is all well?". */
const YESES: readonly string[] = ["Yes", "YES!", "yes.", "Y E S"];

/**
 * Twilio's default help keywords, HELP and INFO, which Twilio answers itself with the account's
 * help message: the whole message one word, as Twilio reads its keywords (any case, fullwidth or
 * styled letters, surrounding spaces and punctuation ignored: isProviderConfirmedOptOut's reading).
 */
const HELPS: readonly string[] = [
  "HELP",
  "help",
  "Help!",
  "help?",
  "INFO",
  "Info.",
  " info ",
  "ＨＥＬＰ",
  "𝐈𝐍𝐅𝐎",
];

/**
 * Help asked of the owner in words: replies. And what only looks like HELP or INFO but is not the
 * single word Twilio answers (an emoji beside it, spaced letters, a phone's signature): Twilio
 * sends no help message for it, so, not filed either, it would reach no one ("HELP 😡").
 */
const HELP_REPLIES: readonly string[] = [
  "HELP 😡",
  "help 😭😭",
  "HELP 🙂",
  "H E L P",
  "Help\nSent from my iPhone",
  "INFO\nSent from my iPhone",
  "Help! The screen went black",
  "help please",
  "Can you help?",
  "More info on the warranty?",
  "Info: the remote is broken",
  "helpful, thanks",
  "information",
];

describe("smsKeyword", () => {
  it.each(HELPS)("%j is a help keyword", (body) => {
    expect(smsKeyword(body)).toBe("help");
  });

  it.each(HELP_REPLIES)("%j asks the owner: a reply", (body) => {
    expect(smsKeyword(body)).toBe(undefined);
  });

  it.each(OPT_OUTS)("%j is an opt-out", (body) => {
    expect(smsKeyword(body)).toBe("opt-out");
  });

  it.each(REPLIES)("%j is an ordinary reply", (body) => {
    expect(smsKeyword(body)).toBe(undefined);
  });

  it.each(OPT_INS)("%j is an opt-in", (body) => {
    expect(smsKeyword(body)).toBe("opt-in");
  });

  it.each(YESES)("%j opts back in only a suppressed number", (body) => {
    expect(smsKeyword(body)).toBe("opt-in-if-suppressed");
  });
});

describe("what Twilio said of an inbound SMS", () => {
  it.each([
    ["STOP", true],
    [" stop ", true],
    ["Stop", true],
    ["START", false],
    ["", false],
    [undefined, false],
  ] as const)("OptOutType %j is an opt-out: %s", (optOutType, expected) => {
    expect(isTwilioOptOut(optOutType)).toBe(expected);
  });

  it.each([
    // Twilio's Advanced Opt-Out took it for one (a keyword the shop added): whatever its words.
    [{ body: "Basta ya", optOutType: "STOP" }, "opt-out"],
    [{ body: "All good thanks", optOutType: "stop" }, "opt-out"],
    // Otherwise our own reading decides.
    [{ body: "All good thanks" }, undefined],
    [{ body: "All good thanks", optOutType: "START" }, undefined],
    [{ body: "Stop texting me", optOutType: "" }, "opt-out"],
    [{ body: "START", optOutType: "START" }, "opt-in"],
    // A help keyword of Twilio's, or one the shop added to its Messaging Service ("Aide").
    [{ body: "Aide", optOutType: "HELP" }, "help"],
    [{ body: "Aide", optOutType: " help " }, "help"],
    [{ body: "HELP", optOutType: "HELP" }, "help"],
    [{ body: "help" }, "help"],
    // Opting out wins over a help keyword (a STOP the shop also listed as help).
    [{ body: "STOP", optOutType: "HELP" }, "opt-out"],
  ] as const)("%j → %j", (message, expected) => {
    expect(inboundSmsKeyword(message)).toBe(expected);
  });
});

describe("isProviderConfirmedOptOut: the whole message one of Twilio's standard keywords", () => {
  it.each([
    ["STOP", true],
    ["stop", true],
    ["  Stop!!! ", true],
    ['"unsubscribe."', true],
    ["ＳＴＯＰ", true],
    ["optout", true],
    ["stopall", true],
    // Only we read these as opt-outs, so only we can confirm them.
    ["Stop please", false],
    ["please stop texting me", false],
    ["STOPP", false],
    ["ARRET", false],
    ["", false],
  ] as const)("%j → %s", (body, expected) => {
    expect(isProviderConfirmedOptOut(body)).toBe(expected);
  });
});
