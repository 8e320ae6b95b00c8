/**
 * The template's DynamoDB tables on DynamoDB Local, created from their own
 * AWS::DynamoDB::Table definitions (keys, indexes, stream, TTL). Their streams
 * are read by the local plane's own reader (lambdas/local/jobs-stream.ts).
 */
import {
  CreateTableCommand,
  DescribeTableCommand,
  UpdateTimeToLiveCommand,
  type CreateTableCommandInput,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { getAtt, physicalName, type CfnTemplate } from './cfn-resolve.js';

export interface TemplateTable {
  logicalId: string;
  name: string;
  /** The stream ARN the template gives (what a Lambda sees as eventSourceARN). */
  streamArn?: string;
  /** The stream ARN DynamoDB Local gave it (what the reader reads). */
  localStreamArn?: string;
}

/** Creates every table of the template; CloudFormation's properties map onto CreateTable one to one. */
export async function createTemplateTables(
  client: DynamoDBClient,
  template: CfnTemplate,
): Promise<Record<string, TemplateTable>> {
  const tables: Record<string, TemplateTable> = {};
  for (const [logicalId, resource] of Object.entries(template.Resources)) {
    if (resource.Type !== 'AWS::DynamoDB::Table') continue;
    const p = resource.Properties ?? {};
    const name = physicalName(template, logicalId);
    const input: CreateTableCommandInput = {
      TableName: name,
      AttributeDefinitions: p.AttributeDefinitions,
      KeySchema: p.KeySchema,
      BillingMode: p.BillingMode ?? 'PROVISIONED',
      ...(p.ProvisionedThroughput ? { ProvisionedThroughput: p.ProvisionedThroughput } : {}),
      ...(p.GlobalSecondaryIndexes ? { GlobalSecondaryIndexes: p.GlobalSecondaryIndexes } : {}),
      ...(p.LocalSecondaryIndexes ? { LocalSecondaryIndexes: p.LocalSecondaryIndexes } : {}),
      ...(p.StreamSpecification
        ? { StreamSpecification: { StreamEnabled: true, StreamViewType: p.StreamSpecification.StreamViewType } }
        : {}),
    };
    await client.send(new CreateTableCommand(input));
    if (p.TimeToLiveSpecification?.Enabled) {
      await client.send(
        new UpdateTimeToLiveCommand({ TableName: name, TimeToLiveSpecification: p.TimeToLiveSpecification }),
      );
    }
    const described = await client.send(new DescribeTableCommand({ TableName: name }));
    tables[logicalId] = {
      logicalId,
      name,
      ...(p.StreamSpecification
        ? { streamArn: getAtt(template, logicalId, 'StreamArn'), localStreamArn: described.Table?.LatestStreamArn }
        : {}),
    };
  }
  return tables;
}
