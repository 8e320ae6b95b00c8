/**
 * Every example in `flare <command> --help` runs as written: it names its own
 * command, parses with the command's flags and arity, and the values a reader
 * would copy (job ids, image digests) have the form the API accepts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseInput } from '../../cli/command.js';
import { COMMANDS } from '../../cli/main.js';

/** The shape newJobId (lambdas/adapters/ids.ts) gives: `j-` and 16 base32 characters. */
const JOB_ID = /^j-[0-9a-z]{16}$/;

/** The flare command line of an example: its words, as a shell splits them ('...', "..."), from `flare` to a `|`, `&&` or `<`. */
function flareWords(line: string): string[] {
  const all: { word: string; quoted: boolean }[] = [];
  const re = /'([^']*)'|"([^"]*)"|(\S+)/g;
  for (let m = re.exec(line); m; m = re.exec(line)) all.push({ word: m[1] ?? m[2] ?? m[3]!, quoted: !m[3] });
  const start = all.findIndex((w) => !w.quoted && w.word === 'flare');
  const end = all.findIndex((w, i) => i > start && !w.quoted && /^(\||&&|;|<|>)/.test(w.word));
  return all.slice(start, end < 0 ? undefined : end).map((w) => w.word);
}

/** The command an argv runs: the longest command name it starts with. */
const commandOf = (argv: string[]) =>
  COMMANDS.filter((c) => c.name.split(' ').every((part, i) => argv[i] === part)).sort(
    (a, b) => b.name.length - a.name.length,
  )[0];

describe("the CLI's help examples", () => {
  for (const command of COMMANDS) {
    for (const example of command.examples) {
      it(`${command.name}: ${example}`, () => {
        const argv = flareWords(example);
        assert.equal(argv[0], 'flare', 'it runs flare');
        const runs = commandOf(argv.slice(1));
        assert.ok(runs, `a command of flare: ${argv.join(' ')}`);
        const input = parseInput(runs, argv.slice(1 + runs.name.split(' ').length));
        for (const word of [...input.positionals, ...Object.values(input.values).flat()]) {
          if (typeof word !== 'string') continue;
          if (/^j-/.test(word)) assert.match(word, JOB_ID, `${word}: a job id as the API gives them`);
          if (/^sha256:/.test(word)) assert.match(word, /^sha256:[0-9a-f]{64}$/, `${word}: a whole digest`);
        }
      });
    }
  }
});
