import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { detect, luhn, redactJsonText, redactText } from "./detectors.ts";

const JWT =
  "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
const PEM = [
  "-----BEGIN RSA PRIVATE KEY-----",
  "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu",
  "KUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQ==",
  "-----END RSA PRIVATE KEY-----",
].join("\n");

/** The kinds found in `text`, in order. */
const kinds = (text: string) => detect(text).map((d) => d.kind);

describe("detectors: true positives", () => {
  const cases: [string, string, string][] = [
    ["an e-mail address", "write to alice.smith+tag@mail.example.co.uk today", "email"],
    ["a Visa number with spaces", "card 4111 1111 1111 1111 on file", "card"],
    ["a Mastercard number with dashes", "5555-5555-5555-4444", "card"],
    ["an Amex number", "amex 378282246310005.", "card"],
    ["a Discover number", "6011111111111117", "card"],
    ["a US SSN", "SSN: 123-45-6789", "ssn"],
    ["a German IBAN in groups", "IBAN DE89 3704 0044 0532 0130 00 (EUR)", "iban"],
    ["a UK IBAN written compact", "GB82WEST12345698765432", "iban"],
    ["a French IBAN with letters", "FR14 2004 1010 0505 0001 3M02 606", "iban"],
    ["a JWT", `Authorization: Bearer ${JWT}`, "jwt"],
    ["an AWS access key id", "aws_access_key_id=AKIAIOSFODNN7EXAMPLE", "aws_access_key"],
    ["a GitHub personal token", "token ghp_1234567890abcdefghijABCDEFGHIJ123456", "github_token"],
    ["a GitHub OAuth token", "gho_1234567890abcdefghijABCDEFGHIJ123456", "github_token"],
    ["a GitHub fine-grained token", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "github_token"],
    ["a Slack bot token", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "slack_token"],
    ["a Stripe live secret key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "stripe_key"],
    ["a Stripe restricted key", "rk_live_4eC39HqLyjWDarjtT1zdp7dc", "stripe_key"],
    ["a PEM private key", `key:\n${PEM}\nend`, "private_key"],
  ];
  for (const [what, text, kind] of cases) {
    it(`given ${what}, then it is found as ${kind}`, () => {
      assert.deepEqual(kinds(text), [kind]);
    });
  }

  it("given a card number followed by its CVV, then the card is found without the CVV", () => {
    const text = "4111 1111 1111 1111 123";
    assert.deepEqual(detect(text), [{ kind: "card", start: 0, end: 19 }]);
    assert.equal(redactText(text).text, "[redacted:card] 123");
  });

  it("given a PEM block cut off before its END line, then everything from BEGIN is redacted", () => {
    assert.equal(redactText(`before ${PEM.split("\n").slice(0, 2).join("\n")}`).text, "before [redacted:private_key]");
  });

  it("checks card numbers with Luhn", () => {
    assert.equal(luhn("4111111111111111"), true);
    assert.equal(luhn("4111111111111112"), false);
    assert.equal(luhn("79927398713"), true);
  });
});

describe("detectors: near misses are left alone", () => {
  const cases: [string, string][] = [
    ["a Luhn-invalid 16-digit number", "order 4111 1111 1111 1112"],
    ["an ISO date and a timestamp", "created 2024-01-15 10:30:00+02 and 2024-01-15T10:30:00Z"],
    ["US phone numbers", "call +1 415 555 0100 or (415) 555-0100 or 415-555-0100"],
    ["international phone numbers", "+44 20 7946 0958, +49 30 123456789, +33 1 23 45 67 89"],
    ["UUIDs", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11 and 41111111-1111-1111-1111-111111111111"],
    ["invalid SSN areas and groups", "000-12-3456 666-12-3456 900-12-3456 123-00-4567 123-45-0000"],
    ["an IBAN with wrong check digits", "DE00 3704 0044 0532 0130 00"],
    ["an IBAN-like word of an unknown country", "ZZ89370400440532013000"],
    ["a long reference number", "ref 12345678901234567890123"],
    ["a number starting with 1 that passes Luhn", "tracking 1000000000000000009"],
    ["something that looks like a JWT but is not", "eyJub3QiOiJhIGp3dCJ9.eyJhIjoxfQ.sig and eyJxx.yy.zz"],
    ["an address without a domain", "root@localhost and user@host"],
    ["version numbers and IP addresses", "v1.2.3 at 192.168.100.200:5432"],
    ["a short AKIA prefix", "AKIA1234"],
    ["a Stripe test key", "sk_test_4eC39HqLyjWDarjtT1zdp7dc"],
    ["plain prose", "The quick brown fox jumps over the lazy dog."],
  ];
  for (const [what, text] of cases) {
    it(`given ${what}, then nothing is found`, () => {
      assert.deepEqual(kinds(text), []);
      assert.deepEqual(redactText(text), { text, found: [] });
    });
  }
});

describe("detectors: redactText", () => {
  it("given a message with several kinds, then each is replaced and counted, in kind order", () => {
    const text =
      "duplicate key value violates unique constraint: Key (email)=(bob@example.com) " +
      "card=4111111111111111 ssn=123-45-6789 other=carol@example.org";
    const result = redactText(text);
    assert.equal(
      result.text,
      "duplicate key value violates unique constraint: Key (email)=([redacted:email]) " +
        "card=[redacted:card] ssn=[redacted:ssn] other=[redacted:email]",
    );
    assert.deepEqual(result.found, [
      { kind: "email", count: 2 },
      { kind: "card", count: 1 },
      { kind: "ssn", count: 1 },
    ]);
  });

  it("given overlapping detections, then the higher-priority one wins", () => {
    // The IBAN's digits could read as a card number; the IBAN is reported.
    assert.deepEqual(kinds("NL91ABNA0417164300"), ["iban"]);
    assert.deepEqual(kinds(PEM), ["private_key"]);
  });

  it("given a long text without matches, then it comes back as it is, quickly", () => {
    const text = "a".repeat(100_000) + "@".repeat(1000) + "1-".repeat(20_000);
    const started = performance.now();
    assert.deepEqual(redactText(text).found, []);
    assert.ok(performance.now() - started < 1000, "no catastrophic backtracking");
  });
});

describe("detectors: redactJsonText", () => {
  it("given JSON with secrets in strings and a card as a number, then valid JSON with them replaced", () => {
    const { text, changed, found } = redactJsonText(
      '{"contact":"x@example.com","card":4111111111111111,"n":[1,2.5e3]}',
    );
    assert.equal(changed, true);
    assert.deepEqual(JSON.parse(text), { contact: "[redacted:email]", card: "[redacted:card]", n: [1, 2500] });
    assert.deepEqual(found, [
      { kind: "email", count: 1 },
      { kind: "card", count: 1 },
    ]);
  });

  it("given JSON with escapes, then they are kept", () => {
    const json = '{"a":"line\\nbreak \\"quoted\\"","b":"\\u00e9 ok"}';
    assert.deepEqual(redactJsonText(json), { text: json, changed: false, found: [] });
  });

  it("given text that is not JSON, then it is redacted and returned as a JSON string", () => {
    const { text } = redactJsonText('{"broken": "mail a@example.com');
    assert.equal(JSON.parse(text), '{"broken": "mail [redacted:email]');
  });
});
