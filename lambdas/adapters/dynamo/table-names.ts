export interface TableNames {
  jobs: string;
  quotas: string;
  pools: string;
  idempotency: string;
  catalog: string;
}
