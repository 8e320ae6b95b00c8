/** What starting DynamoDB Local can fail with: no usable Java, a bad or failed install, a JVM that never answered. */
export class JavaNotFoundError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'JavaNotFoundError';
  }
}

export class DynamoDbLocalIntegrityError extends Error {
  constructor(
    readonly file: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`integrity mismatch for ${file}: expected ${expected}, got ${actual}; refusing to use it`);
    this.name = 'DynamoDbLocalIntegrityError';
  }
}

export class DynamoDbLocalInstallError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DynamoDbLocalInstallError';
  }
}

export class DynamoDbLocalStartError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DynamoDbLocalStartError';
  }
}

/** The JVM could not bind its port: another process took it after it was found free. */
export class PortTakenError extends DynamoDbLocalStartError {}
