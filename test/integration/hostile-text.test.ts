/**
 * Hostile input (see test/support/hostile-plane.ts for the plane): text that is only data. Shell
 * metacharacters in argv are stored verbatim and never interpreted; NUL and control characters in names
 * and env are refused (400 naming the field, nothing stored); mention and link syntax in a job name is
 * escaped in Slack and Teams posts.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { waitFor } from '../support/harness.js';
import { job, marker, posts, refused, send, submit, untilEnded, useHostilePlane } from '../support/hostile-plane.js';
import { ALICE_TOKEN } from '../support/identities.js';

describe('hostile input', () => {
  useHostilePlane();

  describe('command: argv only, stored verbatim, never interpreted', () => {
    it('keeps shell metacharacters and newlines as argv elements: stored as sent, and `; touch` creates no file', async () => {
      const file = marker();
      const command = [
        'echo',
        `; touch ${file}`,
        `$(touch ${file})`,
        `\`touch ${file}\``,
        `| touch ${file}`,
        `&& touch ${file}`,
        'two\nlines',
        '$HOME',
        '*',
        "'single'",
        '"double"',
        '\\',
      ];
      const submitted = await submit(ALICE_TOKEN, { template: 'echo', command });
      assert.deepEqual(submitted.command, command, 'the answer carries the command as sent');
      assert.deepEqual(
        (await job(submitted.id)).command,
        command,
        'the stored command is the input, element for element',
      );

      assert.equal((await untilEnded(submitted.id)).state, 'SUCCEEDED');
      // echo printed its arguments as they are: no expansion, no globbing, no second command.
      const logs = await send('GET', `/v1/jobs/${submitted.id}/logs`, { token: ALICE_TOKEN });
      assert.equal(logs.status, 200, logs.text);
      assert.equal(logs.body.lines.map((l: { message: string }) => l.message).join('\n'), command.slice(1).join(' '));
      assert.equal(existsSync(file), false, `${file} must not exist: an argv element was run by a shell`);
    });

    it('runs a first element with `; touch` in it as one (missing) program: the job fails and no file appears', async () => {
      const file = marker();
      const command = [`true; touch ${file}`];
      const submitted = await submit(ALICE_TOKEN, { template: 'echo', command });
      assert.deepEqual((await job(submitted.id)).command, command);
      assert.equal((await untilEnded(submitted.id)).state, 'FAILED');
      assert.equal(existsSync(file), false, `${file} must not exist`);
    });

    it('stores control characters other than NUL in argv as data', async () => {
      const command = ['echo', 'esc\u001b[2J', 'bell\u0007', 'tab\there', 'cr\rlf'];
      const submitted = await submit(ALICE_TOKEN, { template: 'echo', command });
      assert.deepEqual((await job(submitted.id)).command, command);
      await untilEnded(submitted.id);
    });

    const notArgv: Array<[string, unknown, string[]]> = [
      ['a string (argv only, never a shell line)', 'ls -la; rm -rf /', ['command']],
      ['an object', { argv: ['ls'] }, ['command']],
      ['a number', 42, ['command']],
      ['null', null, ['command']],
      ['a boolean', true, ['command']],
      ['an empty array', [], ['command']],
      ['nested arrays', [['ls', '-la']], ['command.0']],
      ['an array of numbers', [1, 2], ['command.0', 'command.1']],
      ['an empty element', ['echo', ''], ['command.1']],
      ['a NUL in an element', ['echo', 'a\u0000b'], ['command.1']],
      ['a 5000-character element', ['echo', 'x'.repeat(5000)], ['command.1']],
      ['257 elements', Array.from({ length: 257 }, () => 'x'), ['command']],
    ];
    for (const [what, command, fields] of notArgv) {
      it(`refuses a job command that is ${what} (400 naming it), storing nothing`, async () => {
        await refused(
          () => send('POST', '/v1/jobs', { token: ALICE_TOKEN, body: { template: 'echo', command } }),
          400,
          fields,
        );
      });
    }

    it('refuses a template command that is a string or an object, storing nothing', async () => {
      const base = { name: 'shelly', project: 'vision', pool: 'local', image: 'tools' };
      await refused(
        () => send('POST', '/v1/templates', { token: ALICE_TOKEN, body: { ...base, command: 'sh -c "id"' } }),
        400,
        ['command'],
      );
      await refused(
        () => send('POST', '/v1/templates', { token: ALICE_TOKEN, body: { ...base, command: { 0: 'id' } } }),
        400,
        ['command'],
      );
      await refused(() => send('PATCH', '/v1/templates/echo', { token: ALICE_TOKEN, body: { command: 'id' } }), 400, [
        'command',
      ]);
    });
  });

  describe('NUL and control characters in names and env', () => {
    const cases: Array<[string, Record<string, unknown>, string[]]> = [
      ['a NUL in the name', { name: 'job\u0000x' }, ['name']],
      ['an escape sequence in the name', { name: 'red\u001b[31m' }, ['name']],
      ['a newline in the name', { name: 'line\nbreak' }, ['name']],
      ['a DEL in the name', { name: 'del\u007f' }, ['name']],
      ['a NUL in an env value', { env: { GOOD: 'a\u0000b' } }, ['env.GOOD']],
      ['a NUL in an env name', { env: { 'BAD\u0000': 'x' } }, ['env.BAD\u0000']],
      ['a newline in an env name', { env: { 'A\nB': 'x' } }, ['env.A\nB']],
      ['an env name with `=`', { env: { 'A=B': 'x' } }, ['env.A=B']],
      ['an env value that is not a string', { env: { N: 1 } }, ['env.N']],
    ];
    for (const [what, extra, fields] of cases) {
      it(`refuses ${what} (400 naming it), storing nothing`, async () => {
        await refused(
          () => send('POST', '/v1/jobs', { token: ALICE_TOKEN, body: { template: 'echo', ...extra } }),
          400,
          fields,
        );
      });
    }

    // Raw JSON: in a JS literal `__proto__` would set the prototype, where JSON.parse makes an own key.
    const reserved: Array<[string, string, string[]]> = [
      ['`__proto__` naming an object (once dropped without a word)', '{"__proto__":{"A":"x"}}', ['env.__proto__']],
      ['`__proto__` naming a string', '{"__proto__":"x","GOOD":"y"}', ['env.__proto__']],
      ['`constructor`', '{"constructor":"x"}', ['env.constructor']],
      ['`prototype` beside a bad value', '{"prototype":"x","N":2}', ['env.prototype', 'env.N']],
      ['an object as a value', '{"A":{"B":"c"}}', ['env.A']],
      ['an array for the map', '["A=x"]', ['env']],
      ['a name Flare sets (once refused only when the job started)', '{"FLARE_JOB_ID":"x"}', ['env.FLARE_JOB_ID']],
      [
        "the NVIDIA runtime's device selector",
        '{"NVIDIA_VISIBLE_DEVICES":"all","OK":"y"}',
        ['env.NVIDIA_VISIBLE_DEVICES'],
      ],
    ];
    for (const [what, env, fields] of reserved) {
      it(`refuses an env with ${what} (400 naming it), on a job, a new template and a template change, storing nothing`, async () => {
        await refused(
          () => send('POST', '/v1/jobs', { token: ALICE_TOKEN, raw: `{"template":"echo","env":${env}}` }),
          400,
          fields,
        );
        await refused(
          () =>
            send('POST', '/v1/templates', {
              token: ALICE_TOKEN,
              raw: `{"name":"envy","project":"vision","pool":"local","image":"tools","command":["true"],"env":${env}}`,
            }),
          400,
          fields,
        );
        const templates = await send('GET', '/v1/templates?project=vision', { token: ALICE_TOKEN });
        const echo = templates.body.items.find((t: { name: string }) => t.name === 'echo');
        await refused(
          () => send('PATCH', `/v1/templates/${echo.id}`, { token: ALICE_TOKEN, raw: `{"env":${env}}` }),
          400,
          fields,
        );
      });
    }

    it('refuses control characters in a template name and a job rename', async () => {
      await refused(
        () =>
          send('POST', '/v1/templates', {
            token: ALICE_TOKEN,
            body: { name: 'x\u0000', project: 'vision', pool: 'local', image: 'tools', command: ['true'] },
          }),
        400,
        ['name'],
      );
      const submitted = await submit(ALICE_TOKEN, { template: 'echo' });
      await refused(
        () => send('PATCH', `/v1/jobs/${submitted.id}`, { token: ALICE_TOKEN, body: { name: 'a\u0007b' } }),
        400,
        ['name'],
      );
    });
  });

  describe('notifications', () => {
    it('escapes Slack and Teams mention and link syntax in job names; the job keeps its name as given', async () => {
      const name = '<!channel> <@U123> <https://evil|click> [click](https://evil) @here';
      const submitted = await submit(ALICE_TOKEN, { template: 'echo', name });
      assert.equal((await job(submitted.id)).name, name);
      await untilEnded(submitted.id);
      const mine = (p: { body: any }) => JSON.stringify(p.body).includes(submitted.id);
      const slack = await waitFor('Slack posts', async () =>
        ((found) => found.length >= 2 && found)(posts.filter((p) => p.path === '/slack' && mine(p))),
      );
      const teams = await waitFor('Teams posts', async () =>
        ((found) => found.length >= 2 && found)(posts.filter((p) => p.path === '/teams' && mine(p))),
      );

      const texts = (value: unknown): string[] =>
        typeof value === 'string'
          ? [value]
          : Array.isArray(value)
            ? value.flatMap(texts)
            : value && typeof value === 'object'
              ? Object.values(value).flatMap(texts)
              : [];
      // What each renders as a mention or a link: Slack's <…> syntax and bare @here (Mattermost); Teams' Markdown links and autolinks.
      const live = {
        '/slack': ['<!channel>', '<@U123>', '<https://evil|click>', '@here'],
        '/teams': ['<!channel>', '<https://evil|click>', '[click](https://evil)'],
      };
      for (const post of [...slack, ...teams]) {
        for (const text of texts(post.body)) {
          for (const syntax of live[post.path as keyof typeof live]) {
            assert.ok(
              !text.includes(syntax),
              `${post.path} posted ${JSON.stringify(syntax)} unescaped: ${JSON.stringify(text)}`,
            );
          }
        }
      }
      assert.ok(
        slack.some((p) => p.body.text.includes('&lt;!channel&gt; &lt;@\u200bU123&gt; &lt;https://evil|click&gt;')),
        JSON.stringify(slack[0].body.text),
      );
      assert.ok(
        teams.some((p) => texts(p.body).some((t) => t.includes('\\<!channel\\>'))),
        JSON.stringify(teams[0].body),
      );
    });
  });
});
