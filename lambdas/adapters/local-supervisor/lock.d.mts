export declare const LOCK_NAME: string;
export declare const SOCKET_NAME: string;
export declare function bootId(): string;
export declare function liveSupervisor(lockText: string, dataDir: string): { pid: number; nonce: string } | undefined;
export declare function isSupervisorCommand(args: readonly string[], dataDir: string): boolean;
export declare function directSocketPath(dataDir: string): string | undefined;
