/** Who the tests act as: alice of project vision, bob of audio, and root the admin. */
import type { Identity } from '../../lambdas/core/identity.js';

export const alice: Identity = { name: 'alice', projects: ['vision'], admin: false };
export const bob: Identity = { name: 'bob', projects: ['audio'], admin: false };
export const root: Identity = { name: 'root', projects: [], admin: true };

/** Their bearer tokens on a local control plane (`flare local`), given by LOCAL_USERS in its config. */
export const ROOT_TOKEN = 'root-token-0123456789abcdefg';
export const ALICE_TOKEN = 'alice-token-0123456789abcdef';
export const BOB_TOKEN = 'bob-token-0123456789abcdefgh';

export const LOCAL_USERS = [
  { name: 'root', token: ROOT_TOKEN, admin: true },
  { name: 'alice', token: ALICE_TOKEN, projects: ['vision'] },
  { name: 'bob', token: BOB_TOKEN, projects: ['audio'] },
];
