/**
 * The user data of GPU job instances: a firewall rule that keeps the instance
 * metadata service from non-root users, and the dead-man switch, which enforces
 * the job's live timeout on the instance itself, whatever the control plane is
 * doing. Static text: nothing from a job reaches these shells.
 */

/**
 * Written on the instance when the job's container starts (an ISO-8601
 * time), and rewritten when its live timeout changes; the dead-man switch
 * trusts it over the `flare:expires-at` tag, which is set at launch.
 */
export const EXPIRES_AT_FILE = '/var/lib/flare/expires-at';
export const EXPIRES_AT_TAG = 'flare:expires-at';
/** The label lambdas/core/container-command.ts gives every job container (`flare.job=<jobId>`): what the dead-man switch stops. */
export const JOB_CONTAINER_LABEL = 'flare.job';
/** SIGTERM to SIGKILL when the dead-man switch stops a job (`docker stop --time`); the local supervisor's grace too. */
export const DEAD_MAN_STOP_GRACE_SECONDS = 5;
/** How often, at most, the dead-man switch re-reads the deadline: a shortened live timeout is noticed within this. */
export const DEAD_MAN_POLL_MS = 500;
/** After asking for a poweroff, how long before asking again (it normally never comes back). */
const DEAD_MAN_RETRY_MS = 60_000;
/** The longest grace the switch allows: an instance idles at most this long past its job when the control plane is away. */
export const MAX_DEAD_MAN_GRACE_MINUTES = 60;

/** The launch template's boot commands (FlareCompute): the metadata guard, then the dead-man switch with `graceMinutes`. */
export function instanceBootCommands(graceMinutes: number): string[] {
  return [...metadataGuard(), ...deadManSwitch(graceMinutes)];
}

/**
 * Boot script, the job's live timeout enforced next to it: at the job's deadline
 * it stops the job's container (`docker stop`: SIGTERM, SIGKILL after
 * DEAD_MAN_STOP_GRACE_SECONDS), and once the deadline plus `graceMinutes` has
 * passed it powers the instance off (and so terminates it, per the launch
 * template). The deadline is EXPIRES_AT_FILE, written when the container starts
 * and rewritten when the live timeout changes; until it exists (or if it cannot
 * be parsed) the instance's `flare:expires-at` tag from launch. Millisecond
 * precision: the file is re-read at least every DEAD_MAN_POLL_MS and the last wait
 * before the deadline is a fractional `sleep`, so a shortened timeout is honoured
 * too. Static text: nothing from a job reaches this shell.
 */
export function deadManSwitchScript(graceMinutes: number): string {
  return [
    '#!/bin/bash',
    'set -u',
    'imds() {',
    '  local token',
    '  token=$(curl -sf -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 300" http://169.254.169.254/latest/api/token) || return 1',
    '  curl -sf -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1"',
    '}',
    '# Milliseconds since the epoch for an ISO-8601 UTC time (2030-01-01T00:00:00.250Z, fractions allowed);',
    '# 0 for anything else, so a stray word that `date -d` would read as "today" never counts.',
    'epoch_ms() {',
    '  [[ "$1" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?Z$ ]] || { echo 0; return; }',
    '  local ns',
    '  ns=$(date -u -d "$1" +%s%N 2>/dev/null) || { echo 0; return; }',
    '  echo $((ns / 1000000))',
    '}',
    'now_ms() { local ns; ns=$(date +%s%N); echo $((ns / 1000000)); }',
    '# GNU sleep takes fractions: 347 ms is `sleep 0.347`, never rounded to a whole second.',
    'sleep_ms() { sleep "$(($1 / 1000)).$(printf \'%03d\' $(($1 % 1000)))"; }',
    '# Every container of the job (the instance runs one job): SIGTERM now, SIGKILL after the grace.',
    '# Run on every pass past the deadline, so a container still starting then is stopped too.',
    'stop_job() {',
    '  local ids',
    `  ids=$(timeout 10 docker ps --quiet --filter label=${JOB_CONTAINER_LABEL} 2>/dev/null) || return 0`,
    '  [ -n "$ids" ] || return 0',
    '  logger -t flare-deadman "job deadline $expires (from the $from) reached; stopping container(s)" $ids',
    '  # Container ids are hex words: split on purpose. timeout: a hung dockerd must not hold off the poweroff.',
    `  timeout ${DEAD_MAN_STOP_GRACE_SECONDS + 25} docker stop --time ${DEAD_MAN_STOP_GRACE_SECONDS} $ids > /dev/null`,
    '}',
    'while true; do',
    `  expires=$(head -c 64 ${EXPIRES_AT_FILE} 2>/dev/null | tr -d '[:space:]' || true)`,
    '  from=file',
    '  deadline=$(epoch_ms "$expires")',
    '  if [ "$deadline" -le 0 ]; then',
    `    expires=$(imds tags/instance/${EXPIRES_AT_TAG} || true)`,
    '    from=tag',
    '    deadline=$(epoch_ms "$expires")',
    '  fi',
    `  wait=${DEAD_MAN_POLL_MS}`,
    '  if [ "$deadline" -gt 0 ]; then',
    '    now=$(now_ms)',
    `    off=$((deadline + ${graceMinutes * 60_000}))`,
    '    if [ "$now" -lt "$deadline" ]; then',
    '      [ $((deadline - now)) -lt "$wait" ] && wait=$((deadline - now))',
    '    else',
    '      stop_job',
    '      if [ "$now" -ge "$off" ]; then',
    '        logger -t flare-deadman "past the job deadline $expires (from the $from) and its grace; powering off"',
    '        shutdown -h now',
    `        wait=${DEAD_MAN_RETRY_MS}`,
    '      elif [ $((off - now)) -lt "$wait" ]; then',
    '        wait=$((off - now))',
    '      fi',
    '    fi',
    '  fi',
    '  sleep_ms "$wait"',
    'done',
  ].join('\n');
}

/**
 * Only root may reach the instance metadata service. Containers on docker's
 * bridge are already cut off by the hop limit of 1; multi-node jobs share the
 * host network and always run as a non-root uid, so this rule is what keeps the
 * instance role's credentials from them. A oneshot unit, so it survives a reboot.
 */
export const METADATA_GUARD_RULE = 'OUTPUT -d 169.254.169.254/32 -m owner ! --uid-owner 0 -j REJECT';

function metadataGuard(): string[] {
  return [
    `printf '[Unit]\\nDescription=Flare: only root reaches the instance metadata service\\nBefore=docker.service\\n[Service]\\nType=oneshot\\nRemainAfterExit=yes\\nExecStart=/bin/sh -c "iptables -C ${METADATA_GUARD_RULE} 2>/dev/null || iptables -I ${METADATA_GUARD_RULE}"\\n[Install]\\nWantedBy=multi-user.target\\n' > /etc/systemd/system/flare-imds-guard.service`,
    'systemctl daemon-reload',
    'systemctl enable --now flare-imds-guard.service',
  ];
}

function deadManSwitch(graceMinutes: number): string[] {
  return [
    `cat > /usr/local/sbin/flare-deadman <<'FLARE_EOF'\n${deadManSwitchScript(graceMinutes)}\nFLARE_EOF`,
    'chmod 0755 /usr/local/sbin/flare-deadman',
    `mkdir -p ${EXPIRES_AT_FILE.slice(0, EXPIRES_AT_FILE.lastIndexOf('/'))}`,
    "printf '[Unit]\\nDescription=Flare dead-man switch\\n[Service]\\nExecStart=/usr/local/sbin/flare-deadman\\nRestart=always\\n[Install]\\nWantedBy=multi-user.target\\n' > /etc/systemd/system/flare-deadman.service",
    'systemctl daemon-reload',
    'systemctl enable --now flare-deadman.service',
  ];
}
