/**
 * What one job costs Flare's control plane on AWS, from what the local run
 * counted: state transitions, Lambda invocations and their durations, DynamoDB
 * request units, EventBridge events, API Gateway requests. Pure arithmetic.
 */

/** us-east-1 list prices, on-demand, no free tier. */
export interface PriceTable {
  region: string;
  /** When these were read off AWS's pricing pages (they are not fetched by the run). */
  asOf: string;
  stepFunctionsPerTransition: number;
  lambdaPerRequest: number;
  /** arm64, first tier: Flare's functions run on Graviton (lib/lambda-defaults.ts). */
  lambdaPerGbSecond: number;
  /** On-demand write / read request units (after the 2024-11-01 price cut). */
  dynamoPerWriteUnit: number;
  dynamoPerReadUnit: number;
  /** Custom events put on a bus (AWS service events on the default bus are free). */
  eventBridgePerEvent: number;
  /** HTTP API, first 300 million requests a month. */
  apiGatewayPerRequest: number;
}

export const US_EAST_1_PRICES: PriceTable = {
  region: 'us-east-1',
  asOf: '2025-07 (AWS pricing pages for Step Functions, Lambda, DynamoDB, EventBridge, API Gateway)',
  stepFunctionsPerTransition: 0.025 / 1000,
  lambdaPerRequest: 0.2 / 1e6,
  lambdaPerGbSecond: 0.0000133334,
  dynamoPerWriteUnit: 0.625 / 1e6,
  dynamoPerReadUnit: 0.125 / 1e6,
  eventBridgePerEvent: 1 / 1e6,
  apiGatewayPerRequest: 1 / 1e6,
};

export interface LambdaUsage {
  /** The function (api, tasks, computeEvents, streamPublisher, ...). */
  name: string;
  invocations: number;
  /** Mean duration of one invocation; billed rounded up to the next millisecond. */
  meanDurationMs: number;
  memoryMb: number;
  /** False when the duration is an assumption rather than a measurement (say which in `note`). */
  measured: boolean;
  note?: string;
}

/** One job's share of everything the control plane did. */
export interface UsagePerJob {
  transitions: number;
  lambdas: LambdaUsage[];
  dynamoWriteUnits: number;
  dynamoReadUnits: number;
  eventBridgeEvents: number;
  apiRequests: number;
}

export interface CostLine {
  item: string;
  quantity: number;
  unit: string;
  unitPriceUsd: number;
  usd: number;
}

export interface CostBreakdown {
  lines: CostLine[];
  totalUsd: number;
}

/** GB-seconds of one function's invocations: each is billed in whole milliseconds. */
export function gbSeconds(lambda: Pick<LambdaUsage, 'invocations' | 'meanDurationMs' | 'memoryMb'>): number {
  const billedMs = Math.max(1, Math.ceil(lambda.meanDurationMs));
  return (lambda.invocations * billedMs * lambda.memoryMb) / 1024 / 1000;
}

export function costPerJob(usage: UsagePerJob, prices: PriceTable): CostBreakdown {
  const line = (item: string, quantity: number, unit: string, unitPriceUsd: number): CostLine => ({
    item,
    quantity,
    unit,
    unitPriceUsd,
    usd: quantity * unitPriceUsd,
  });
  const requests = usage.lambdas.reduce((sum, l) => sum + l.invocations, 0);
  const gbs = usage.lambdas.reduce((sum, l) => sum + gbSeconds(l), 0);
  const lines = [
    line('Step Functions state transitions', usage.transitions, 'transition', prices.stepFunctionsPerTransition),
    line('Lambda requests', requests, 'request', prices.lambdaPerRequest),
    line('Lambda duration', gbs, 'GB-s', prices.lambdaPerGbSecond),
    line('DynamoDB writes', usage.dynamoWriteUnits, 'WRU', prices.dynamoPerWriteUnit),
    line('DynamoDB reads', usage.dynamoReadUnits, 'RRU', prices.dynamoPerReadUnit),
    line('EventBridge events', usage.eventBridgeEvents, 'event', prices.eventBridgePerEvent),
    line('API Gateway requests', usage.apiRequests, 'request', prices.apiGatewayPerRequest),
  ];
  return { lines, totalUsd: lines.reduce((sum, l) => sum + l.usd, 0) };
}
