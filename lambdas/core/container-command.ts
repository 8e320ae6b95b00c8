/**
 * The one place that turns a job's container spec into a `docker run` command
 * line, and into the script SSM runs on an instance to start it.
 *
 * Job-supplied text (image, command, env) never meets a shell parser:
 * - `dockerRunArgs` returns an argv for spawning `docker` directly. Every
 *   option is one `--flag=value` element, so no value can be read as a flag;
 *   the image is checked so it cannot be one either and follows a `--`;
 *   the job's command comes after the image, where docker hands it to the
 *   container verbatim (even `--privileged` there is just an argument).
 * - `instanceScript` carries that argv as base64 of JSON in a quoted
 *   heredoc; a fixed Python program decodes it and execs docker with it.
 *   The only other values in the script are validated job ids, paths,
 *   numbers from operator config, the job's expiry, checked to be an
 *   ISO 8601 UTC timestamp, and for an image in Amazon ECR its registry host
 *   and region, which only a pattern of letters, digits, '.' and '-' yields
 *   (core/ecr.ts).
 * - `deadlineScript` (a live timeout changed) carries only a validated job
 *   id and such a timestamp.
 */
import type { ContainerSpec } from '../ports/compute.js';
import { SHELL_SAFE_HOST, ecrImage, type EcrImage } from './ecr.js';
import { ValidationError, type FieldIssue } from './errors.js';
import { isFlareSetEnvName } from './env-names.js';
import { DIGEST_PATTERN, IMAGE_REFERENCE_PATTERN } from './schemas.js';

export interface DockerRunOptions {
  /** Hard memory limit in docker's size syntax (`30g`); keeps the host's agents alive when a job overcommits. */
  memory: string;
  /** @default 4096 */
  pidsLimit?: number;
  /** Size of /dev/shm; docker's 64m breaks PyTorch data loaders. @default '1g' */
  shmSize?: string;
  /** `uid[:gid]` the container runs as. @default '65534:65534' (nobody) */
  user?: string;
  /** Run as the image's own user (often root; still with every capability dropped). @default false */
  allowRoot?: boolean;
  /** Host directory under which `<jobId>` is bind-mounted at /scratch; no mount when absent. */
  scratchDir?: string;
  /** Host directory (the job's own) bind-mounted at /outputs and named by $FLARE_OUTPUT_DIR; neither when absent. */
  outputDir?: string;
  logDriver?: string;
  logOptions?: Record<string, string>;
  /** `--detach` and keep the stopped container (so `docker wait` can read its exit code) instead of `--rm`. @default false */
  detach?: boolean;
  /** Accept an image without a digest (local process mode, where the image is only recorded). @default false */
  allowUnpinnedImage?: boolean;
  /**
   * Share the host's network namespace (`--network=host`): multi-node jobs, whose
   * ranks reach each other on MASTER_PORT and NCCL's own ports. Only with a
   * non-root user, because on the host network the metadata service is one hop
   * away and only the instance's uid-based firewall rule keeps it from the job.
   * @default false (docker's bridge, where the hop limit keeps IMDS out of reach)
   */
  hostNetwork?: boolean;
}

export const DEFAULT_PIDS_LIMIT = 4096;
export const DEFAULT_SHM_SIZE = '1g';
export const DEFAULT_USER = '65534:65534';
/** Where the job's scratch directory appears inside the container. */
export const SCRATCH_MOUNT = '/scratch';
/** Where the job's output directory ($FLARE_OUTPUT_DIR) appears inside the container. */
export const OUTPUT_MOUNT = '/outputs';

/** Job ids become container names, file names, tag values and EC2 client tokens (64 chars with a suffix). */
export const JOB_ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,59}$/;
const PINNED_IMAGE_PATTERN = new RegExp(
  `^${IMAGE_REFERENCE_PATTERN.source.slice(1, -1)}@${DIGEST_PATTERN.source.slice(1, -1)}$`,
);
const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SIZE_PATTERN = /^[1-9][0-9]{0,14}[bkmg]?$/;
const USER_PATTERN = /^[0-9]{1,10}(:[0-9]{1,10})?$/;
/** Absolute, no `.`/`..` segments, no commas (docker's --mount value is CSV). */
const HOST_PATH_PATTERN = /^(\/(?!\.{1,2}(\/|$))[A-Za-z0-9._-]+)+$/;
const LOG_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,127}$/;
const MAX_PIDS_LIMIT = 4_194_304;

/** What Flare itself sets in a member of an array's environment (the job's own env may not use FLARE_ names). */
export function arrayEnv(spec: Pick<ContainerSpec, 'array'>): Record<string, string> {
  if (!spec.array) return {};
  const { id, index, size } = spec.array;
  return { FLARE_ARRAY_ID: id, FLARE_ARRAY_INDEX: String(index), FLARE_ARRAY_SIZE: String(size) };
}

/** Lone UTF-16 surrogates cannot be encoded for exec; with the `u` flag a valid pair is one code point and does not match. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

function textProblem(value: string): string | undefined {
  if (value.includes('\0')) return 'must not contain NUL';
  if (LONE_SURROGATE.test(value)) return 'must be valid Unicode';
  return undefined;
}

const JOB_ID_ISSUE: FieldIssue = {
  field: 'jobId',
  reason: 'must be 1-60 lowercase letters, digits or -, starting with a letter or digit',
};

export function assertJobId(jobId: string): void {
  if (typeof jobId !== 'string' || !JOB_ID_PATTERN.test(jobId)) throw new ValidationError([{ ...JOB_ID_ISSUE }]);
}

/**
 * The argv after `docker` (it starts with `run`) that runs `spec` hardened:
 * every capability dropped, no new privileges, pid/memory/shm limits, a
 * non-root user unless allowed, no host namespaces, devices or mounts other
 * than the job's scratch directory. Throws ValidationError naming each bad field.
 */
export function dockerRunArgs(spec: ContainerSpec, options: DockerRunOptions): string[] {
  const issues = validate(spec, options);
  if (issues.length > 0) throw new ValidationError(issues);

  const { jobId } = spec;
  const args = [
    'run',
    options.detach ? '--detach' : '--rm',
    `--name=${containerName(jobId)}`,
    `--label=flare.job=${jobId}`,
    '--init',
  ];
  args.push('--cap-drop=ALL', '--security-opt=no-new-privileges');
  args.push(
    `--pids-limit=${options.pidsLimit ?? DEFAULT_PIDS_LIMIT}`,
    `--memory=${options.memory}`,
    `--shm-size=${options.shmSize ?? DEFAULT_SHM_SIZE}`,
  );
  if (!options.allowRoot) args.push(`--user=${options.user ?? DEFAULT_USER}`);
  if (options.hostNetwork) args.push('--network=host');

  const visible = spec.gpus === 0 ? 'void' : spec.devices ? spec.devices.join(',') : 'all';
  if (spec.gpus > 0) {
    // docker reads --gpus as CSV: a device list needs the inner quotes to stay one field.
    args.push(spec.devices ? `--gpus="device=${visible}"` : '--gpus=all');
  }
  // Set even without --gpus: a runtime that defaults to nvidia would honour an image's own value.
  args.push(`--env=NVIDIA_VISIBLE_DEVICES=${visible}`, `--env=FLARE_JOB_ID=${jobId}`);
  if (options.outputDir) args.push(`--env=FLARE_OUTPUT_DIR=${OUTPUT_MOUNT}`);
  for (const [name, value] of Object.entries(arrayEnv(spec))) args.push(`--env=${name}=${value}`);
  if (options.scratchDir && !('HOME' in spec.env)) args.push(`--env=HOME=${SCRATCH_MOUNT}`);
  for (const name of Object.keys(spec.env).sort()) args.push(`--env=${name}=${spec.env[name]}`);
  // By name only: docker takes the value from its own environment, so it is on no command line.
  for (const name of Object.keys(spec.secrets ?? {}).sort()) args.push(`--env=${name}`);

  if (options.scratchDir)
    args.push(`--mount=type=bind,src=${scratchPath(options.scratchDir, jobId)},dst=${SCRATCH_MOUNT}`);
  if (options.outputDir) args.push(`--mount=type=bind,src=${options.outputDir},dst=${OUTPUT_MOUNT}`);
  if (options.logDriver) args.push(`--log-driver=${options.logDriver}`);
  for (const key of Object.keys(options.logOptions ?? {}).sort())
    args.push(`--log-opt=${key}=${options.logOptions![key]}`);

  args.push('--', spec.image, ...spec.command);
  return args;
}

export function containerName(jobId: string): string {
  return `flare-${jobId}`;
}

export function scratchPath(scratchDir: string, jobId: string): string {
  return `${scratchDir.replace(/\/+$/, '')}/${jobId}`;
}

function validate(spec: ContainerSpec, options: DockerRunOptions): FieldIssue[] {
  const issues: FieldIssue[] = [];
  const bad = (field: string, reason: string) => issues.push({ field, reason });

  if (typeof spec.jobId !== 'string' || !JOB_ID_PATTERN.test(spec.jobId))
    bad('jobId', 'must be 1-60 lowercase letters, digits or -, starting with a letter or digit');

  const image = typeof spec.image === 'string' ? spec.image : '';
  if (!PINNED_IMAGE_PATTERN.test(image) && !(options.allowUnpinnedImage && IMAGE_REFERENCE_PATTERN.test(image))) {
    bad(
      'image',
      options.allowUnpinnedImage
        ? 'must be a lowercase registry/repository[:tag] reference, optionally @sha256:<64 hex>'
        : 'must be a lowercase registry/repository[:tag] reference pinned by @sha256:<64 hex>',
    );
  }

  if (!Array.isArray(spec.command)) bad('command', 'must be an array of strings');
  else {
    spec.command.forEach((arg, i) => {
      const problem = typeof arg === 'string' ? textProblem(arg) : 'must be a string';
      if (problem) bad(`command[${i}]`, problem);
    });
  }

  for (const [name, value] of Object.entries(spec.env ?? {})) {
    if (!ENV_NAME_PATTERN.test(name)) bad(`env.${name}`, 'names are letters, digits and _, not starting with a digit');
    else if (isFlareSetEnvName(name)) bad(`env.${name}`, 'is set by Flare and may not be overridden');
    const problem = typeof value === 'string' ? textProblem(value) : 'must be a string';
    if (problem) bad(`env.${name}`, problem);
  }

  for (const name of Object.keys(spec.secrets ?? {})) {
    if (!ENV_NAME_PATTERN.test(name))
      bad(`secrets.${name}`, 'names are letters, digits and _, not starting with a digit');
    else if (isFlareSetEnvName(name)) bad(`secrets.${name}`, 'is set by Flare and may not be overridden');
    else if (Object.hasOwn(spec.env ?? {}, name)) bad(`secrets.${name}`, 'is also set in env');
  }

  if (!Number.isInteger(spec.gpus) || spec.gpus < 0) bad('gpus', 'must be a whole number, 0 or more');
  if (spec.devices !== undefined) {
    const devices = spec.devices;
    if (
      !Array.isArray(devices) ||
      !devices.every((d) => Number.isInteger(d) && d >= 0) ||
      new Set(devices).size !== devices.length
    ) {
      bad('devices', 'must be distinct GPU indices');
    } else if (devices.length !== spec.gpus) {
      bad('devices', `must name exactly ${spec.gpus} GPUs`);
    }
  }

  if (typeof options.memory !== 'string' || !SIZE_PATTERN.test(options.memory))
    bad('options.memory', "must be a size such as '512m' or '30g'");
  if (options.shmSize !== undefined && !SIZE_PATTERN.test(options.shmSize))
    bad('options.shmSize', "must be a size such as '64m' or '2g'");
  if (
    options.pidsLimit !== undefined &&
    (!Number.isInteger(options.pidsLimit) || options.pidsLimit < 1 || options.pidsLimit > MAX_PIDS_LIMIT)
  ) {
    bad('options.pidsLimit', `must be a whole number from 1 to ${MAX_PIDS_LIMIT}`);
  }
  if (!options.allowRoot) {
    const user = options.user ?? DEFAULT_USER;
    if (!USER_PATTERN.test(user)) bad('options.user', "must be numeric 'uid' or 'uid:gid'");
    else if (/^0+(:|$)/.test(user)) bad('options.user', 'uid 0 needs allowRoot');
  }
  if (options.hostNetwork && options.allowRoot)
    bad(
      'options.hostNetwork',
      'needs a non-root user: on the host network only a uid rule keeps the job from the instance metadata service',
    );
  if (options.scratchDir !== undefined && !HOST_PATH_PATTERN.test(options.scratchDir.replace(/\/+$/, ''))) {
    bad(
      'options.scratchDir',
      "must be an absolute path of letters, digits, '.', '_', '-' without '.' or '..' segments",
    );
  }
  if (options.outputDir !== undefined && !HOST_PATH_PATTERN.test(options.outputDir))
    bad('options.outputDir', "must be an absolute path of letters, digits, '.', '_', '-' without '.' or '..' segments");
  if (options.logDriver !== undefined && !LOG_NAME_PATTERN.test(options.logDriver))
    bad('options.logDriver', 'must be a log driver name');
  for (const [key, value] of Object.entries(options.logOptions ?? {})) {
    if (!LOG_NAME_PATTERN.test(key)) bad(`options.logOptions.${key}`, 'must be a log option name');
    const problem = typeof value === 'string' ? textProblem(value) : 'must be a string';
    if (problem) bad(`options.logOptions.${key}`, problem);
  }
  return issues;
}

/** Seconds SSM lets a Run Command run at most (AWS-RunShellScript's executionTimeout ceiling, 48 h). */
export const SSM_MAX_EXECUTION_TIMEOUT_SECONDS = 172_800;
/**
 * A conservative ceiling for the script SSM carries; larger commands or envs
 * must travel another way (S3, Parameter Store). Checked so start fails with a
 * clear reason instead of an opaque SendCommand error.
 */
export const MAX_INSTANCE_SCRIPT_BYTES = 64 * 1024;
/** Where the script keeps its per-job files on the instance. */
export const INSTANCE_STATE_DIR = '/run/flare';
/**
 * The job's expiry on the instance: the dead-man switch (lib/instance-user-data.ts) reads it in
 * preference to the `flare:expires-at` tag, which can only be set at launch, so a
 * rewritten file can carry a live-timeout extension.
 */
export const INSTANCE_DEADLINE_FILE = '/var/lib/flare/expires-at';
/** ISO 8601 in UTC as Date.toISOString writes it (milliseconds optional): what `date -d` reads. */
const UTC_TIMESTAMP_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/;
const BASE64_DELIMITER = 'FLARE_ARGV_BASE64';
/** Two seconds apart: how long the script waits for dockerd before failing like docker does (125). */
const DOCKER_WAIT_TRIES = 90;

/**
 * The POSIX sh script that SSM's AWS-RunShellScript runs on each instance
 * (the agent may run it with `sh`, which is dash on Ubuntu, so no bashisms).
 *
 * It starts the container detached, so the container's life belongs to
 * dockerd and not to the SSM command, then blocks in `docker wait` and exits
 * with the container's exit code: the SSM command's status and exit code are
 * the job's. Running it twice starts the container once; the second run just
 * waits on the same container and reports the same code.
 *
 * Before the container starts it writes the job's expiry to
 * INSTANCE_DEADLINE_FILE, where the instance's dead-man switch (lib/instance-user-data.ts)
 * reads it: at the expiry it stops the container by its `flare.job` label, so
 * `docker wait` returns and the command ends after expiresAt (EXPIRED), and later
 * powers the instance off; deadlineScript rewrites it when the live timeout changes.
 */
export function instanceScript(spec: ContainerSpec, options: DockerRunOptions): string {
  const detached = { ...options, detach: true };
  const issues = [...validate(spec, detached), ...deadlineIssues(spec.expiresAt)];
  const secrets = Object.keys(spec.secrets ?? {}).length > 0 ? secretSourceOf(spec, issues) : undefined;
  if (issues.length > 0) throw new ValidationError(issues);
  const argv = dockerRunArgs(spec, detached);
  const { jobId, expiresAt } = spec;
  const name = containerName(jobId);
  const argvFile = `${INSTANCE_STATE_DIR}/${jobId}.argv.json`;
  const secretsFile = `${INSTANCE_STATE_DIR}/${jobId}.secrets.json`;

  const lines = [
    '#!/bin/sh',
    `# Flare job ${jobId}: start its container once, wait for it, exit with its code.`,
    '# Generated by instanceScript(); job-supplied text is only inside the base64 block and no shell parses it.',
    'set -eu',
    'umask 077',
    `mkdir -p ${INSTANCE_STATE_DIR}`,
    ...encodedFileLines(argvFile, argv),
    // Where this instance's copy of the secret values is, never the values.
    ...(secrets ? encodedFileLines(secretsFile, secrets) : []),
    // Before the container starts.
    ...deadlineLines(jobId, expiresAt),
  ];
  const owner = options.allowRoot ? '' : ownerFlags(options.user ?? DEFAULT_USER);
  if (options.scratchDir) lines.push(`install -d -m 0700${owner} ${scratchPath(options.scratchDir, jobId)}`);
  // Owned by the container's user, so that the job can write its outputs there.
  if (options.outputDir) lines.push(`install -d -m 0700${owner} ${options.outputDir}`);
  lines.push(
    // The SSM agent can come online before dockerd has started.
    'tries=0',
    'until docker info > /dev/null 2>&1; do',
    `  tries=$((tries + 1)); if [ "$tries" -ge ${DOCKER_WAIT_TRIES} ]; then echo "flare: docker is not running" >&2; exit 125; fi`,
    '  sleep 2',
    'done',
    // One starter at a time; a second delivery of this command finds the container and only waits.
    `exec 9> ${INSTANCE_STATE_DIR}/${jobId}.lock`,
    'flock 9',
    `if ! docker container inspect ${name} > /dev/null 2>&1; then`,
    ...ecrLoginLines(ecrImage(spec.image)),
    `  python3 -c '${EXEC_ARGV_PROGRAM}' ${argvFile}${secrets ? ` ${secretsFile}` : ''}`,
    'fi',
    'flock -u 9',
    `code=$(docker wait ${name})`,
    `echo "flare: container ${name} exited with code $code"`,
    'exit "$code"',
    '',
  );
  const script = lines.join('\n');
  if (Buffer.byteLength(script, 'utf8') > MAX_INSTANCE_SCRIPT_BYTES) {
    throw new ValidationError([
      {
        field: 'command',
        reason: `command and env are too large to send to the instance (limit ${MAX_INSTANCE_SCRIPT_BYTES} bytes once encoded)`,
      },
    ]);
  }
  return script;
}

/** A quoted heredoc writing `value` to `path` as JSON: the one way job-supplied text enters a script. */
export function encodedFileLines(path: string, value: unknown): string[] {
  const encoded = Buffer.from(JSON.stringify(value), 'utf8').toString('base64');
  return [`base64 -d > ${path} <<'${BASE64_DELIMITER}'`, ...(encoded.match(/.{1,76}/g) ?? []), BASE64_DELIMITER];
}

/**
 * The POSIX sh script that moves a running job's deadline on its instances (its
 * live timeout was changed): it rewrites INSTANCE_DEADLINE_FILE, which the
 * dead-man switch re-reads every half second, exactly as instanceScript first wrote it.
 * The only values in it are the job id and the expiry, each checked against a
 * pattern that admits no shell syntax; anything else is refused before a script exists.
 */
export function deadlineScript(jobId: string, expiresAt: string): string {
  const issues = [
    ...(typeof jobId === 'string' && JOB_ID_PATTERN.test(jobId) ? [] : [{ ...JOB_ID_ISSUE }]),
    ...deadlineIssues(expiresAt),
  ];
  if (issues.length > 0) throw new ValidationError(issues);
  return [
    '#!/bin/sh',
    `# Flare job ${jobId}: its live timeout changed; move the deadline the dead-man switch enforces.`,
    '# Generated by deadlineScript(); the job id and the expiry are checked patterns, nothing else is variable.',
    'set -eu',
    'umask 077',
    ...deadlineLines(jobId, expiresAt),
    '',
  ].join('\n');
}

/** Written to a temporary file and renamed into place, so the dead-man switch never reads half a line. */
function deadlineLines(jobId: string, expiresAt: string): string[] {
  return [
    `mkdir -p ${dirname(INSTANCE_DEADLINE_FILE)}`,
    `echo ${expiresAt} > ${INSTANCE_DEADLINE_FILE}.${jobId}.tmp`,
    `mv -f ${INSTANCE_DEADLINE_FILE}.${jobId}.tmp ${INSTANCE_DEADLINE_FILE}`,
  ];
}

function deadlineIssues(expiresAt: unknown): FieldIssue[] {
  if (typeof expiresAt === 'string' && UTC_TIMESTAMP_PATTERN.test(expiresAt) && Number.isFinite(Date.parse(expiresAt)))
    return [];
  return [{ field: 'expiresAt', reason: "must be an ISO 8601 UTC timestamp such as '2030-01-01T00:00:00.000Z'" }];
}

/**
 * A private ECR image needs docker logged in to its registry before the pull (the instance role may read
 * it); other registries need nothing. A failed login exits 125, as a failed `docker run` would, saying why.
 */
function ecrLoginLines(ecr: EcrImage | undefined): string[] {
  if (!ecr) return [];
  const { registry, region } = ecr;
  if (!SHELL_SAFE_HOST.test(registry) || !SHELL_SAFE_HOST.test(region))
    throw new ValidationError([{ field: 'image', reason: 'has an ECR registry that is not a plain host name' }]);
  return [
    `  if ! password=$(aws ecr get-login-password --region ${region}); then echo "flare: no ECR login for ${registry} (aws ecr get-login-password failed)" >&2; exit 125; fi`,
    `  if ! printf '%s' "$password" | docker login --username AWS --password-stdin ${registry} > /dev/null; then echo "flare: docker login to ${registry} failed" >&2; exit 125; fi`,
  ];
}

function dirname(path: string): string {
  return path.slice(0, path.lastIndexOf('/'));
}

function ownerFlags(user: string): string {
  const [uid, gid] = user.split(':');
  return gid === undefined ? ` -o ${uid}` : ` -o ${uid} -g ${gid}`;
}

/** A secret id prefix of the deployment's job copies (contract/secrets.ts) and a region. */
const SECRET_ID_PREFIX_PATTERN = /^flare\/[A-Za-z][A-Za-z0-9-]{0,127}\/jobs\/[a-z0-9][a-z0-9-]{0,59}\/$/;
const REGION_PATTERN = /^[a-z]{2}(-[a-z]+)+-\d$/;

/** Where the instance fetches the job's secret values (ContainerSpec.secretSource), checked. */
function secretSourceOf(spec: ContainerSpec, issues: FieldIssue[]) {
  const source = spec.secretSource;
  if (!source) {
    issues.push({ field: 'secrets', reason: 'need a secretSource: where the instance fetches them' });
    return undefined;
  }
  if (!SECRET_ID_PREFIX_PATTERN.test(source.secretIdPrefix) || !source.secretIdPrefix.endsWith(`/jobs/${spec.jobId}/`))
    issues.push({ field: 'secretSource.secretIdPrefix', reason: "must be flare/<stack>/jobs/<this job's id>/" });
  if (!REGION_PATTERN.test(source.region)) issues.push({ field: 'secretSource.region', reason: 'must be a region' });
  return { secretIdPrefix: source.secretIdPrefix, region: source.region };
}

/**
 * Reads the argv file and execs docker with it: no shell, no locale
 * dependence (arguments are encoded to UTF-8 bytes here). Given a second file
 * (where the job's secrets are), it first reads this instance's copy of them
 * with the instance role (its id from the metadata service, the values through
 * the AWS CLI's stdout, never a file or a command line) into its own
 * environment, which docker passes on for each `--env=NAME`; a failure exits
 * 125, as a failed `docker run` would. Fixed text: it must contain no single
 * quote, since the script wraps it in one.
 */
export const EXEC_ARGV_PROGRAM = [
  'import json, os, subprocess, sys, urllib.request',
  'with open(sys.argv[1], encoding="utf-8") as f:',
  '    argv = json.load(f)',
  'if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):',
  '    sys.exit("flare: malformed argv file")',
  'if len(sys.argv) > 2:',
  '    try:',
  '        with open(sys.argv[2], encoding="utf-8") as f:',
  '            source = json.load(f)',
  '        imds = "http://169.254.169.254/latest/"',
  '        ttl = {"X-aws-ec2-metadata-token-ttl-seconds": "60"}',
  '        token = urllib.request.urlopen(urllib.request.Request(imds + "api/token", method="PUT", headers=ttl), timeout=5).read().decode()',
  '        ask = urllib.request.Request(imds + "meta-data/instance-id", headers={"X-aws-ec2-metadata-token": token})',
  '        instance = urllib.request.urlopen(ask, timeout=5).read().decode()',
  '        read = ["aws", "secretsmanager", "get-secret-value", "--region", source["region"], "--secret-id", source["secretIdPrefix"] + instance, "--query", "SecretString", "--output", "json"]',
  '        values = json.loads(json.loads(subprocess.run(read, check=True, capture_output=True).stdout))',
  '    except Exception as error:',
  '        print("flare: cannot read the job secrets (" + type(error).__name__ + ")", file=sys.stderr)',
  '        sys.exit(125)',
  '    os.environ.update({k: v for k, v in values.items() if isinstance(v, str)})',
  'os.execvp(b"docker", [b"docker"] + [a.encode("utf-8") for a in argv])',
].join('\n');
