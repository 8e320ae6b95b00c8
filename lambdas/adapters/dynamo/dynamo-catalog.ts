/**
 * Catalog on DynamoDB: templates and images in the catalog table (key `kind`, `name`).
 *
 * - `kind='image'`, `name`: one item per image, `{ createdAt, versions: [...] }`. Versions are
 *   appended with a condition on the current count, so two admins adding at once never
 *   overwrite each other. DynamoDB caps an item at 400 KB: a version takes about 150-500
 *   bytes, so an image holds a few thousand at the least (core/images.ts caps it below that).
 * - `kind='template'`, `name=<id>`: `{ spec, revision, deletingUntil? }`; the template record
 *   lives in `spec` because the key already uses the attribute `name`.
 * - `kind='template-name'`, `name=<project|_public>#<name>`: `{ templateId, spec, revision }`, the
 *   claim that keeps names unique per owner, written in the same transaction as every write of the
 *   template's record: its copy of `spec` and `revision` resolves a name in one read. It holds no
 *   `deletingUntil`: the job's own transaction checks the template item for that. Claims written
 *   before the copy have `templateId` only, and are resolved by reading the template as well.
 *
 * `deletingUntil` marks a template a delete is checking (core/templates.ts): updates and new
 * jobs (JobStore.createJob, through `templateUsableCheck`) are refused while it is live.
 */
import { GetCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { Conflict, QuotaExceeded } from '../../core/errors.js';
import type { Catalog, ImageRecord, ImageVersion, TemplateRecord } from '../../ports/catalog.js';
import { batchGetAll } from './batch-get.js';
import { release, takeQuota } from './counter-items.js';
import { readAll } from './paging.js';
import type { TableNames } from './table-names.js';
import { cancellationCodes, conditionalWrite, transactWithRetry, type TransactItems } from './transactions.js';

const IMAGE = 'image';
const TEMPLATE = 'template';
const TEMPLATE_NAME = 'template-name';
/** The owner part of a public template's name claim: no project name starts with '_'. */
const PUBLIC_OWNER = '_public';

type Item = Record<string, unknown>;

/** Not being deleted at `now`: what a template must be for a job to be stored against it. */
const TEMPLATE_USABLE = 'attribute_exists(#spec) AND (attribute_not_exists(#del) OR #del < :now)';
const TEMPLATE_NAMES = { '#spec': 'spec', '#del': 'deletingUntil' };

/** The createJob transaction's check that the job's template exists and is not being deleted. */
export function templateUsableCheck(catalogTable: string, templateId: string, now: string): TransactItems[number] {
  return {
    ConditionCheck: {
      TableName: catalogTable,
      Key: { kind: TEMPLATE, name: templateId },
      ConditionExpression: TEMPLATE_USABLE,
      ExpressionAttributeNames: TEMPLATE_NAMES,
      ExpressionAttributeValues: { ':now': now },
    },
  };
}

export class DynamoCatalog implements Catalog {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tables: Pick<TableNames, 'catalog' | 'quotas'>,
  ) {}

  async getImage(name: string): Promise<ImageRecord | undefined> {
    const { Item } = await this.doc.send(
      new GetCommand({ TableName: this.tables.catalog, Key: { kind: IMAGE, name }, ConsistentRead: true }),
    );
    return Item ? toImage(Item) : undefined;
  }

  async listImages(): Promise<ImageRecord[]> {
    return (await this.queryKind(IMAGE)).map(toImage).filter((i): i is ImageRecord => i !== undefined);
  }

  async appendImageVersion(name: string, version: ImageVersion): Promise<boolean> {
    const appended = await conditionalWrite(
      this.doc,
      version.version === 1
        ? {
            Put: {
              TableName: this.tables.catalog,
              Item: { kind: IMAGE, name, createdAt: version.addedAt, versions: [version] },
              // An item without versions is an image stored before versions existed: replaced.
              ConditionExpression: 'attribute_not_exists(#versions)',
              ExpressionAttributeNames: { '#versions': 'versions' },
            },
          }
        : {
            Update: {
              TableName: this.tables.catalog,
              Key: { kind: IMAGE, name },
              UpdateExpression: 'SET #versions = list_append(#versions, :v)',
              ConditionExpression: 'size(#versions) = :count',
              ExpressionAttributeNames: { '#versions': 'versions' },
              ExpressionAttributeValues: { ':v': [version], ':count': version.version - 1 },
            },
          },
    );
    return appended !== undefined;
  }

  async getTemplate(id: string): Promise<TemplateRecord | undefined> {
    const { Item } = await this.doc.send(
      new GetCommand({ TableName: this.tables.catalog, Key: { kind: TEMPLATE, name: id }, ConsistentRead: true }),
    );
    return Item ? toTemplate(Item) : undefined;
  }

  async findTemplate(project: string | undefined, name: string): Promise<TemplateRecord | undefined> {
    return this.findTemplateIn([project], name);
  }

  /**
   * Every owner's claim in one consistent BatchGetItem. Each claim is read atomically with respect to the
   * transactions that write it, so its copy is the template as some write left it; the two claims may
   * come from different instants, which is no different from reading them one after the other.
   */
  async findTemplateIn(projects: readonly (string | undefined)[], name: string): Promise<TemplateRecord | undefined> {
    const keys = [...new Set(projects.map((project) => claimKey(project, name)))];
    const claims = await this.getClaims(keys);
    for (const key of keys) {
      const claim = claims.get(key);
      // A claim without a copy predates it and leads to the template by id; if that is gone meanwhile, it counts as no claim.
      const template = claim && (claim.spec ? toTemplate(claim) : await this.getTemplate(String(claim.templateId)));
      if (template) return template;
    }
    return undefined;
  }

  async listTemplates(): Promise<TemplateRecord[]> {
    return (await this.queryKind(TEMPLATE)).map(toTemplate).filter((t): t is TemplateRecord => t !== undefined);
  }

  async createTemplate(template: TemplateRecord): Promise<void> {
    const items: TransactItems = [
      {
        Put: {
          TableName: this.tables.catalog,
          Item: templateItem(template),
          ConditionExpression: 'attribute_not_exists(#name)',
          ExpressionAttributeNames: { '#name': 'name' },
        },
      },
      this.putClaim(template, 'free'),
    ];
    if (template.project) items.push(takeQuota(this.tables.quotas, template.project, 'templates', 1));
    try {
      await this.transact(items);
    } catch (error) {
      const reasons = cancellationCodes(error);
      if (!reasons) throw error;
      if (reasons[0] === 'ConditionalCheckFailed') throw new Conflict(`template id ${template.id} is taken; retry`);
      if (reasons[1] === 'ConditionalCheckFailed') throw nameTaken(template);
      if (reasons[2] === 'ConditionalCheckFailed') {
        const { Item } = await this.doc.send(
          new GetCommand({
            TableName: this.tables.quotas,
            Key: { project: template.project, resource: 'templates' },
            ConsistentRead: true,
          }),
        );
        throw new QuotaExceeded(
          template.project!,
          'templates',
          `project ${template.project} has ${Item?.used ?? '?'} of ${Item?.hardLimit ?? '?'} templates; delete one first`,
        );
      }
      throw error;
    }
  }

  async updateTemplate(previous: TemplateRecord, next: TemplateRecord, now: string): Promise<void> {
    const items: TransactItems = [
      {
        Put: {
          TableName: this.tables.catalog,
          Item: templateItem(next),
          ConditionExpression: `#rev = :rev AND ${TEMPLATE_USABLE}`,
          ExpressionAttributeNames: { '#rev': 'revision', ...TEMPLATE_NAMES },
          ExpressionAttributeValues: { ':rev': previous.revision, ':now': now },
        },
      },
    ];
    if (next.name === previous.name) {
      items.push(this.putClaim(next, 'ours'));
    } else {
      items.push(
        {
          Delete: {
            TableName: this.tables.catalog,
            Key: { kind: TEMPLATE_NAME, name: claimKey(previous.project, previous.name) },
            ConditionExpression: 'templateId = :id',
            ExpressionAttributeValues: { ':id': previous.id },
          },
        },
        this.putClaim(next, 'free'),
      );
    }
    try {
      await this.transact(items);
    } catch (error) {
      const reasons = cancellationCodes(error);
      if (!reasons) throw error;
      if (reasons[0] === 'ConditionalCheckFailed')
        throw new Conflict(
          `template ${previous.name} was changed or is being deleted meanwhile; read it again and retry`,
        );
      if (reasons[2] === 'ConditionalCheckFailed') throw nameTaken(next);
      throw error;
    }
  }

  async markTemplateDeleting(id: string, until: string, now: string): Promise<TemplateRecord | undefined> {
    const marked = await conditionalWrite(this.doc, {
      Update: {
        TableName: this.tables.catalog,
        Key: { kind: TEMPLATE, name: id },
        UpdateExpression: 'SET #del = :until',
        ConditionExpression: TEMPLATE_USABLE,
        ExpressionAttributeNames: TEMPLATE_NAMES,
        ExpressionAttributeValues: { ':until': until, ':now': now },
        ReturnValues: 'ALL_NEW',
      },
    });
    if (marked) return toTemplate(marked);
    const current = await this.getTemplate(id);
    if (current) throw new Conflict(`template ${current.name} is being deleted by another request`);
    return undefined;
  }

  async clearTemplateDeleting(id: string, until: string): Promise<void> {
    // A condition that fails means our mark expired and another delete took over: it is theirs to clear.
    await conditionalWrite(this.doc, {
      Update: {
        TableName: this.tables.catalog,
        Key: { kind: TEMPLATE, name: id },
        UpdateExpression: 'REMOVE #del',
        ConditionExpression: '#del = :until',
        ExpressionAttributeNames: { '#del': 'deletingUntil' },
        ExpressionAttributeValues: { ':until': until },
      },
    });
  }

  async deleteTemplate(template: TemplateRecord, until: string, now: string): Promise<boolean> {
    const items: TransactItems = [
      {
        Delete: {
          TableName: this.tables.catalog,
          Key: { kind: TEMPLATE, name: template.id },
          ConditionExpression: '#del = :until AND #del > :now',
          ExpressionAttributeNames: { '#del': 'deletingUntil' },
          ExpressionAttributeValues: { ':until': until, ':now': now },
        },
      },
      {
        Delete: {
          TableName: this.tables.catalog,
          Key: { kind: TEMPLATE_NAME, name: claimKey(template.project, template.name) },
          ConditionExpression: 'templateId = :id',
          ExpressionAttributeValues: { ':id': template.id },
        },
      },
    ];
    if (template.project)
      items.push(release(this.tables.quotas, { project: template.project, resource: 'templates' }, 1));
    try {
      await this.transact(items);
      return true;
    } catch (error) {
      if (cancellationCodes(error)?.[0] === 'ConditionalCheckFailed') return false;
      throw error;
    }
  }

  /** The name claim with its copy of the record: a `free` name is taken, a claim already `ours` rewritten. */
  private putClaim(template: TemplateRecord, claim: 'free' | 'ours'): TransactItems[number] {
    const Item = {
      ...recordAttributes(template),
      kind: TEMPLATE_NAME,
      name: claimKey(template.project, template.name),
      templateId: template.id,
    };
    const condition =
      claim === 'free'
        ? { ConditionExpression: 'attribute_not_exists(#name)', ExpressionAttributeNames: { '#name': 'name' } }
        : { ConditionExpression: 'templateId = :id', ExpressionAttributeValues: { ':id': template.id } };
    return { Put: { TableName: this.tables.catalog, Item, ...condition } };
  }

  /** The claims under `keys` (claim keys, no duplicates) that exist, by key. */
  private async getClaims(keys: string[]): Promise<Map<string, Item>> {
    const found = await batchGetAll(this.doc, {
      [this.tables.catalog]: keys.map((key) => ({ kind: TEMPLATE_NAME, name: key })),
    });
    return new Map((found.get(this.tables.catalog) ?? []).map((item) => [String(item.name), item]));
  }

  /** Every item of one kind: the catalog is read whole for listings (it is small next to the jobs). */
  private async queryKind(kind: string): Promise<Item[]> {
    return readAll(this.doc, {
      Query: {
        TableName: this.tables.catalog,
        KeyConditionExpression: '#kind = :k',
        ExpressionAttributeNames: { '#kind': 'kind' },
        ExpressionAttributeValues: { ':k': kind },
        ConsistentRead: true,
      },
    });
  }

  private transact(items: TransactItems): Promise<void> {
    return transactWithRetry(this.doc, items);
  }
}

function claimKey(project: string | undefined, name: string): string {
  return `${project ?? PUBLIC_OWNER}#${name}`;
}

function nameTaken(template: TemplateRecord): Conflict {
  return new Conflict(
    `a template named ${template.name} already exists ${template.project ? `in project ${template.project}` : 'among the public templates'}`,
  );
}

function templateItem(template: TemplateRecord): Item {
  return { kind: TEMPLATE, name: template.id, ...recordAttributes(template) };
}

/** The record as the template item and its claim's copy store it (read back by `toTemplate`). */
function recordAttributes(template: TemplateRecord): { spec: Omit<TemplateRecord, 'revision'>; revision: number } {
  const { revision, ...spec } = template;
  return { spec, revision };
}

/** Items without an id are templates stored before templates had ids: not shown. */
function toTemplate(item: Item): TemplateRecord | undefined {
  const spec = item.spec as Omit<TemplateRecord, 'revision'> | undefined;
  if (!spec?.id) return undefined;
  return { ...spec, revision: Number(item.revision ?? 1) };
}

function toImage(item: Item): ImageRecord | undefined {
  if (!Array.isArray(item.versions)) return undefined;
  return { name: String(item.name), createdAt: String(item.createdAt), versions: item.versions as ImageVersion[] };
}
