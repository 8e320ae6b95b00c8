/** The Java runtime DynamoDB Local runs on, and whether it can compile Flare's loopback launcher. */
import { join } from 'node:path';
import { JavaNotFoundError } from './dynamodb-local-errors.js';
import { runCommand } from './run-command.js';

/** Where the JVM comes from: `$JAVA_HOME/bin/java` when JAVA_HOME is set, else `java` on PATH. */
export function javaCommand(): string {
  const home = process.env.JAVA_HOME;
  return home !== undefined && home !== '' ? join(home, 'bin', 'java') : 'java';
}

export interface JavaRuntime {
  command: string;
  /** First line of `java -version`. */
  version: string;
  /** Whether it can compile Flare's launcher: Java 11+ with the jdk.compiler module. */
  canCompile: boolean;
}

/** Runs `java -version`; throws JavaNotFoundError, with install instructions, when there is no usable Java. */
export async function checkJava(command: string = javaCommand()): Promise<JavaRuntime> {
  let output: string;
  try {
    output = await runCommand(command, ['-version'], { stderrToStdout: true });
  } catch (error) {
    throw new JavaNotFoundError(
      `DynamoDB Local needs a Java runtime (11 or later), and \`${command} -version\` failed. ` +
        'Install one (Debian/Ubuntu: `apt-get install -y default-jre-headless`; macOS: `brew install openjdk`), ' +
        'or set JAVA_HOME to an existing Java installation.',
      { cause: error },
    );
  }
  const version = output.split('\n')[0]?.trim() ?? '';
  let modules = '';
  try {
    modules = await runCommand(command, ['--list-modules']);
  } catch {
    // Java 8 has no --list-modules; it could not compile the launcher for Java 11 either.
  }
  return { command, version, canCompile: /^jdk\.compiler@/m.test(modules) };
}
