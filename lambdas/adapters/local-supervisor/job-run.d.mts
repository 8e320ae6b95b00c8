/** SIGTERM to SIGKILL when the spec names no grace: the same few seconds as the instance's dead-man switch. */
export declare const DEFAULT_STOP_GRACE_MS: number;
