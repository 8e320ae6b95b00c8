/**
 * GPUs per instance of the NVIDIA GPU instance types the default AMI (Deep Learning
 * Base OSS Nvidia Driver GPU AMI) runs on, by family and size, from AWS's accelerated
 * computing instance specifications. The one table of it: lib/settings.ts checks at
 * synth that every instance type of a pool has the pool's `gpusPerInstance`, since a
 * job is charged gpusPerInstance GPUs per instance whatever type it lands on. A type
 * not listed here cannot be checked; lib/README.md says so.
 */
const ONE_TO_EIGHT = {
  xlarge: 1,
  '2xlarge': 1,
  '4xlarge': 1,
  '8xlarge': 1,
  '16xlarge': 1,
  '12xlarge': 4,
  '24xlarge': 4,
  '48xlarge': 8,
};

const GPUS_BY_FAMILY: Readonly<Record<string, Readonly<Record<string, number>>>> = {
  g4dn: { xlarge: 1, '2xlarge': 1, '4xlarge': 1, '8xlarge': 1, '16xlarge': 1, '12xlarge': 4, metal: 8 },
  g5: ONE_TO_EIGHT,
  g6: ONE_TO_EIGHT,
  g6e: ONE_TO_EIGHT,
  gr6: { '4xlarge': 1, '8xlarge': 1 },
  p3: { '2xlarge': 1, '8xlarge': 4, '16xlarge': 8 },
  p3dn: { '24xlarge': 8 },
  p4d: { '24xlarge': 8 },
  p4de: { '24xlarge': 8 },
  p5: { '4xlarge': 1, '48xlarge': 8 },
  p5e: { '48xlarge': 8 },
  p5en: { '48xlarge': 8 },
  'p6-b200': { '48xlarge': 8 },
};

/** The GPUs of one instance of `instanceType` (`g5.12xlarge`: 4), or undefined when the table does not know the type. */
export function gpusOfInstanceType(instanceType: string): number | undefined {
  const dot = instanceType.indexOf('.');
  if (dot < 0) return undefined;
  return GPUS_BY_FAMILY[instanceType.slice(0, dot)]?.[instanceType.slice(dot + 1)];
}
