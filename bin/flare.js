#!/usr/bin/env node
// The installed `flare` command: run the TypeScript entry through tsx.
import { register } from 'tsx/esm/api';

register();
await import('./flare.ts');
