/**
 * Transaction items that move the counters of the quotas and pools tables. A counter row holds `used`
 * and, with a limit, `available` (limit - used): a take is conditioned on `available`, so no interleaving
 * of transactions overshoots a limit; a release is not conditioned (what was taken is always given back).
 */
import type { TransactItems } from './transactions.js';

type TransactItem = TransactItems[number];

/** Takes `amount` of a project's counted quota: only while it has room, or has no limit (no `hardLimit`). */
export function takeQuota(quotas: string, project: string, resource: string, amount: number): TransactItem {
  return {
    Update: {
      TableName: quotas,
      Key: { project, resource },
      UpdateExpression: 'ADD used :n, available :minus',
      ConditionExpression: 'attribute_not_exists(hardLimit) OR available >= :n',
      ExpressionAttributeValues: { ':n': amount, ':minus': -amount },
    },
  };
}

/** Takes `gpus` of a pool's GPUs: only while it has room (a pool always has a limit). */
export function takePoolGpus(pools: string, pool: string, gpus: number): TransactItem {
  return {
    Update: {
      TableName: pools,
      Key: { name: pool },
      UpdateExpression: 'ADD used :n, available :minus',
      ConditionExpression: 'available >= :n',
      ExpressionAttributeValues: { ':n': gpus, ':minus': -gpus },
    },
  };
}

/** Gives `amount` back to the counter row under `key` of `table`. */
export function release(table: string, key: Record<string, string>, amount: number): TransactItem {
  return {
    Update: {
      TableName: table,
      Key: key,
      UpdateExpression: 'ADD used :minus, available :plus',
      ExpressionAttributeValues: { ':minus': -amount, ':plus': amount },
    },
  };
}

/**
 * Reserve GPU-ms against the project's gpuHours budget: with a limit, only while there is room and the
 * period is not over (the caller rolls it over and tries again); without one, only counted.
 */
export function reserve(quotas: string, project: string, amount: number, at: string): TransactItem {
  return {
    Update: {
      TableName: quotas,
      Key: { project, resource: 'gpuHours' },
      UpdateExpression: 'ADD used :r, reserved :r, available :minus',
      ConditionExpression: 'attribute_not_exists(hardLimit) OR (available >= :r AND periodEnd > :at)',
      ExpressionAttributeValues: { ':r': amount, ':minus': -amount, ':at': at },
    },
  };
}

/** A reservation ends: `charged` of it stays spent in `used`, the rest goes back to `available`. */
export function settleReservation(quotas: string, project: string, reserved: number, charged: number): TransactItem {
  return {
    Update: {
      TableName: quotas,
      Key: { project, resource: 'gpuHours' },
      UpdateExpression: 'ADD used :unused, reserved :minus, available :refund',
      ExpressionAttributeValues: { ':unused': charged - reserved, ':minus': -reserved, ':refund': reserved - charged },
    },
  };
}
