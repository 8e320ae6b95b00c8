/**
 * The root device of the AMI the launch template starts (resolved at deploy time), read
 * once per process with DescribeImages: a job's `volumeSizeGb` replaces that device's
 * volume, and EC2 refuses one smaller than the image's snapshot (InvalidBlockDeviceMapping),
 * which the workflow would only retry. Checked before RunInstances, it fails the job at
 * once with the reason.
 */
import { DescribeImagesCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { LaunchFailed } from '../core/errors.js';

export interface RootDevice {
  deviceName: string;
  /** The root snapshot's size in GB: the smallest root volume EC2 accepts for this image. */
  snapshotGb: number;
}

/** EC2's answers for an image id that does not exist (or not for this account). */
const MISSING_IMAGE_CODES = ['InvalidAMIID.NotFound', 'InvalidAMIID.Unavailable', 'InvalidAMIID.Malformed'];

export class Ec2RootImage {
  /** The answer, once there is one; a failed read is not kept, so the next launch asks again. */
  private cached?: Promise<RootDevice>;

  constructor(
    private readonly ec2: EC2Client,
    readonly imageId: string,
  ) {}

  rootDevice(): Promise<RootDevice> {
    this.cached ??= this.describe().catch((error: unknown) => {
      this.cached = undefined;
      throw error;
    });
    return this.cached;
  }

  /** Throws LaunchFailed when a root volume of `volumeSizeGb` on `deviceName` cannot start this image. */
  async check(jobId: string, volumeSizeGb: number, deviceName: string): Promise<void> {
    const root = await this.rootDevice();
    if (root.deviceName !== deviceName) {
      throw new LaunchFailed(
        `image ${this.imageId} boots from ${root.deviceName}, not ${deviceName} (the deployment's root device name): job ${jobId}'s volumeSizeGb would add a second volume instead of sizing the root`,
      );
    }
    if (volumeSizeGb < root.snapshotGb) {
      throw new LaunchFailed(
        `job ${jobId} asks for a ${volumeSizeGb} GB root volume, but image ${this.imageId}'s root snapshot is ${root.snapshotGb} GB and EC2 refuses a smaller volume: set the template's volumeSizeGb to at least ${root.snapshotGb}`,
      );
    }
  }

  private async describe(): Promise<RootDevice> {
    let images;
    try {
      ({ Images: images } = await this.ec2.send(new DescribeImagesCommand({ ImageIds: [this.imageId] })));
    } catch (error) {
      const code = (error as { name?: unknown }).name;
      if (typeof code === 'string' && MISSING_IMAGE_CODES.includes(code))
        throw new LaunchFailed(`image ${this.imageId} of the launch template does not exist (${code})`, {
          cause: error,
        });
      throw error;
    }
    const image = images?.find((i) => i.ImageId === this.imageId);
    if (!image) throw new LaunchFailed(`image ${this.imageId} of the launch template does not exist`);
    const deviceName = image.RootDeviceName;
    const size = image.BlockDeviceMappings?.find((m) => m.DeviceName === deviceName)?.Ebs?.VolumeSize;
    if (!deviceName || size === undefined)
      throw new LaunchFailed(
        `image ${this.imageId} has no EBS root snapshot, so volumeSizeGb cannot size its root volume`,
      );
    return { deviceName, snapshotGb: size };
  }
}
