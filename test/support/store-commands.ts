/**
 * What each store-port method of the DynamoDB adapters (lambdas/adapters/dynamo) can send, as
 * `Action table` or `Query table/index/name`, on every path: success, a condition or transaction
 * refused, an idempotency replay, a budget period rolled over, a page that continues. Recorded from
 * 18 integration suites on DynamoDB Local (test/support/store-recorder.ts: 43,000 commands, each
 * attributed to the outermost adapter method that sent it; every method here was seen sending), and
 * completed by reading the adapters for the paths no suite took (noted).
 */

/** The commands creating jobs can send: jobs, their `jobs` usage, the claim (and its replay), the template check, admission. */
const CREATE = [
  'PutItem jobs',
  'UpdateItem quotas',
  'PutItem idempotency',
  'ConditionCheckItem catalog',
  'UpdateItem pools',
  // Refused: a claim already taken replays it (a job, or an array's members); the jobs quota says why.
  'GetItem idempotency',
  'GetItem jobs',
  'Query jobs/index/byArray',
  'GetItem quotas',
];
/** Admission's transaction (the job, project GPUs, gpuHours reserve, pool GPUs), and a budget period rolled over. */
const ADMIT = ['UpdateItem jobs', 'UpdateItem quotas', 'UpdateItem pools', 'GetItem quotas'];

export const STORE_COMMANDS: Readonly<Record<string, readonly string[]>> = {
  'JobRecords.createJob': CREATE,
  // The same create: its replay (GetItem idempotency, GetItem jobs) is from reading; no suite replays an admitted submission.
  'JobRecords.createAdmitted': CREATE,
  'JobRecords.createArray': CREATE,
  'JobRecords.listArray': ['Query jobs/index/byArray'],
  'JobRecords.getJob': ['GetItem jobs'],
  'JobRecords.listJobs': ['Query jobs/index/byProject', 'Scan quotas'],
  'JobRecords.updateJob': ['UpdateItem jobs'],
  'JobRecords.recordOutcome': ['UpdateItem jobs'],
  'JobRecords.recordNodeExit': ['UpdateItem jobs'],
  'JobRecords.setTaskToken': ['UpdateItem jobs'],
  'JobRecords.finishJob': ['UpdateItem jobs', 'UpdateItem quotas', 'UpdateItem pools'],
  'JobRecords.requeueJob': ['UpdateItem jobs', 'UpdateItem quotas', 'UpdateItem pools'],
  'JobRecords.changeReservation': ['UpdateItem jobs', 'UpdateItem quotas', 'GetItem quotas', 'GetItem jobs'],
  'JobRecords.deleteJob': ['DeleteItem jobs'],
  'JobQueue.admit': ADMIT,
  'JobQueue.listQueue': ['Query jobs/index/queue'],
  'JobQueue.listQueueSummaries': ['Query jobs/index/queue'],
  'JobQueue.listHolding': ['Query jobs/index/queue'],
  'JobQueue.queuePosition': ['Query jobs/index/queue'],
  'JobQueue.queueLength': ['Query jobs/index/queue'],
  'JobQueue.listActiveJobs': ['Query jobs/index/active'],
  'LimitStore.getPool': ['GetItem pools'],
  'LimitStore.getLimits': ['BatchGetItem pools', 'BatchGetItem quotas'],
  'LimitStore.listPools': ['Scan pools'],
  'LimitStore.setPoolBackfill': ['UpdateItem pools'],
  'LimitStore.setPoolCap': ['UpdateItem pools'],
  'LimitStore.getQuota': ['GetItem quotas'],
  'LimitStore.listQuotas': ['Query quotas', 'Scan quotas'],
  'LimitStore.putQuota': ['UpdateItem quotas', 'GetItem quotas'],
  'LimitStore.removeQuotaLimit': ['UpdateItem quotas'],
  'LimitStore.ensureDefaultQuotas': ['UpdateItem quotas'],
  'Catalog.getImage': ['GetItem catalog'],
  'Catalog.listImages': ['Query catalog'],
  'Catalog.appendImageVersion': ['PutItem catalog', 'UpdateItem catalog'],
  'Catalog.getTemplate': ['GetItem catalog'],
  'Catalog.findTemplate': ['BatchGetItem catalog', 'GetItem catalog'],
  'Catalog.findTemplateIn': ['BatchGetItem catalog', 'GetItem catalog'],
  'Catalog.listTemplates': ['Query catalog'],
  // The template, its name claim, the templates quota; refused by that quota, it reads it.
  'Catalog.createTemplate': ['PutItem catalog', 'UpdateItem quotas', 'GetItem quotas'],
  'Catalog.updateTemplate': ['PutItem catalog', 'DeleteItem catalog'],
  'Catalog.markTemplateDeleting': ['UpdateItem catalog', 'GetItem catalog'],
  'Catalog.clearTemplateDeleting': ['UpdateItem catalog'],
  'Catalog.deleteTemplate': ['DeleteItem catalog', 'UpdateItem quotas'],
  'ReconcileStore.getMarks': ['BatchGetItem idempotency'],
  'ReconcileStore.putMark': ['PutItem idempotency'],
  'ReconcileStore.clearMarks': ['BatchWriteItem idempotency'],
  'ReconcileStore.listCounters': ['Scan quotas', 'Scan pools'],
  'ReconcileStore.repairCounter': ['UpdateItem quotas', 'UpdateItem pools'],
};
