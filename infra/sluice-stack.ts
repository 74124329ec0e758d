import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CfnOutput, Duration, RemovalPolicy, Stack, type StackProps } from "aws-cdk-lib";
import * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import * as iam from "aws-cdk-lib/aws-iam";
import * as lambda from "aws-cdk-lib/aws-lambda";
import {
  NodejsFunction,
  OutputFormat,
  type NodejsFunctionProps,
} from "aws-cdk-lib/aws-lambda-nodejs";
import * as logs from "aws-cdk-lib/aws-logs";
import * as s3 from "aws-cdk-lib/aws-s3";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import type { Construct } from "constructs";
import { tableDefinition } from "../src/meta/dynamodb.js";

const repoRoot = fileURLToPath(new URL("..", import.meta.url));

export interface SluiceStackProps extends StackProps {
  /**
   * Serve the Function URL without AWS authentication (`AuthType: NONE`): anyone may reach the
   * function, and Sluice itself authenticates every request but the public ones (health, the
   * API description) with an API key or a token (docs/rfcs/0005-auth-and-limits.md): a call
   * without a valid credential is answered 401 before any storage is touched. This is the way
   * for browsers and mobile apps, which hold a Sluice token but no AWS credentials.
   *
   * Off by default in this construct (`AWS_IAM`), on by default in the CDK app (infra/app.ts): the URL then takes only SigV4-signed requests from principals
   * allowed to invoke it (`httpFunction.grantInvokeUrl(principal)`: `lambda:InvokeFunctionUrl`,
   * plus `lambda:InvokeFunction` via the URL, as AWS now requires), and Sluice still checks its
   * own credentials behind that. Beware: SigV4 signs into the `Authorization` header by
   * default, the header Sluice reads its bearer credential from, so a caller that signs there
   * has no room left for its Sluice credential.
   */
  publicUrl?: boolean;
}

/**
 * Exactly what the HTTP path sends, by SDK command (see DESIGN.md and the adapters):
 * - S3ObjectStore: PutObject (flush) and GetObject, whole or ranged (fetch). Listing and
 *   DeleteObjects belong to maintenance (the maintenance* lists below), never to this role.
 * - DynamoMetaStore: GetCommand, QueryCommand, PutCommand (a group's state replaced),
 *   DeleteCommand (purging a group's old offsets, one conditional delete per item: never
 *   BatchWriteItem) and TransactWriteCommand. A transaction is authorized per item action; its
 *   items are Put (a topic's tombstone among them), Update, Delete (topic and group delete) and
 *   ConditionCheck (the group guard of an offset commit). Describe lists a partition's index
 *   entries with QueryCommand. An idempotent produce reads its producers' states with one
 *   consistent BatchGetCommand (dynamodb:BatchGetItem). CreateTable/DescribeTable (ensureTable) are for tests and local
 *   use only.
 * POST /v1/admin/maintenance runs a pass in this function too, but a pass deletes objects and
 * purges deleted topics, which this role cannot (no s3:DeleteObject, no dynamodb:BatchWriteItem):
 * in the cloud, the maintenance function runs it.
 */
export const httpObjectActions = ["s3:GetObject", "s3:PutObject"] as const;
/**
 * Not sent by the HTTP path: with it, a GET of a missing key answers 404 (which the adapter
 * reports as `not_found`) instead of 403 (`internal`), which matters once retention deletes
 * segments that a concurrent fetch is about to read.
 */
export const httpBucketActions = ["s3:ListBucket"] as const;
export const httpTableActions = [
  "dynamodb:BatchGetItem",
  "dynamodb:ConditionCheckItem",
  "dynamodb:DeleteItem",
  "dynamodb:GetItem",
  "dynamodb:PutItem",
  "dynamodb:Query",
  "dynamodb:UpdateItem",
] as const;
/** The function writes its own log group only; the stack creates that group. */
export const httpLogActions = ["logs:CreateLogStream", "logs:PutLogEvents"] as const;
/**
 * functions/http.ts reads the token signing secret once per instance, by ARN
 * (GetSecretValueCommand), on the one secret the stack creates. The secret is encrypted with
 * the AWS managed key aws/secretsmanager, whose key policy lets Secrets Manager decrypt for any
 * principal of the account allowed GetSecretValue: no kms:Decrypt grant (one would be needed
 * only for a customer managed key).
 */
export const httpSecretActions = ["secretsmanager:GetSecretValue"] as const;

/**
 * Exactly what one maintenance pass (src/log/maintenance.ts, runMaintenance) sends, by SDK
 * command, step by step (docs/rfcs/0003-segments.md §7):
 * - Intents: listIntents (QueryCommand); for a done one past the grace period, the objects it
 *   replaced go (S3ObjectStore.delete: DeleteObjects, authorized per key as s3:DeleteObject;
 *   there is no s3:DeleteObjects action), then dropIntent (DeleteCommand); a pending one past
 *   intentTimeoutMs is aborted (abortIntent: a conditional DeleteCommand) and its roll's upload
 *   deleted (DeleteObjects).
 * - Retention: getHead (GetCommand), listEntries (QueryCommand), then per step beginIntent and
 *   advanceLogStart, both TransactWriteCommand; a lost step is aborted (DeleteCommand).
 * - Rolls: beginIntent; the chunks read whole (S3ObjectStore.get: GetObjectCommand); the sealed
 *   segment written (PutObjectCommand, one request: a segment is at most rollMaxBytes, far below
 *   the 5 GB PutObject limit); replaceEntries (TransactWriteCommand); a lost swap is aborted.
 * - Deleted topics: listDeletedTopics (QueryCommand); purgePartition pages the partition's keys
 *   (QueryCommand) and deletes them with BatchWriteCommand (dynamodb:BatchWriteItem, whatever
 *   its requests); forgetDeletedTopic drops the tombstone (DeleteCommand).
 * - Object listing (collectGarbage): ListObjectsV2, authorized as s3:ListBucket on the bucket;
 *   listTopics, readIndex and listIntents (QueryCommand), getHead (GetCommand); DeleteObjects.
 * A transaction is authorized per item action (there is no TransactWriteItems action):
 * beginIntent is a ConditionCheck (the topic still has its id) and a Put (the intent);
 * advanceLogStart an Update (the head), an Update (the intent marked done) and Deletes (the
 * entries); replaceEntries an Update (the intent), a Put (the sealed entry) and Deletes (the
 * chunks' entries). It never sends a single-item PutCommand or UpdateCommand, and never Scan.
 */
export const maintenanceObjectActions = [
  "s3:DeleteObject",
  "s3:GetObject",
  "s3:PutObject",
] as const;
/** ListObjectsV2; with it, a GET of a missing key also answers 404 (`not_found`), not 403. */
export const maintenanceBucketActions = ["s3:ListBucket"] as const;
export const maintenanceTableActions = [
  "dynamodb:BatchWriteItem",
  "dynamodb:ConditionCheckItem",
  "dynamodb:DeleteItem",
  "dynamodb:GetItem",
  "dynamodb:PutItem",
  "dynamodb:Query",
  "dynamodb:UpdateItem",
] as const;
export const maintenanceLogActions = ["logs:CreateLogStream", "logs:PutLogEvents"] as const;

/**
 * How long maintenance leaves an object alone. It must exceed the longest time between an
 * upload and its commit, and between a fetch's index read and its object read: both happen
 * within one invocation of the HTTP function (60 s timeout). Objects a roll or retention step
 * replaced are deleted this long after the change, as a pass's clock saw it when it started on
 * the partition (at most one maintenance timeout early). An hour leaves room to spare.
 */
export const MAINTENANCE_GRACE = Duration.hours(1);
export const MAINTENANCE_RATE = Duration.minutes(15);

/**
 * Sluice on AWS: one bucket for the immutable log objects, one DynamoDB table for the index
 * and offsets, the HTTP API as a Lambda function behind a Function URL, and a second function
 * that an EventBridge schedule invokes for the maintenance pass: rolls, retention and cleanup.
 */
export class SluiceStack extends Stack {
  readonly bucket: s3.Bucket;
  readonly table: dynamodb.TableV2;
  /**
   * The HS256 secret that tokens are signed with (`POST /v1/auth/tokens`, or a customer's own
   * backend): only the HTTP function may read it, and its environment holds the ARN alone.
   */
  readonly jwtSecret: secretsmanager.Secret;
  /** The HTTP function's log group. */
  readonly logGroup: logs.LogGroup;
  readonly httpFunction: NodejsFunction;
  readonly functionUrl: lambda.FunctionUrl;
  readonly maintenanceLogGroup: logs.LogGroup;
  readonly maintenanceFunction: NodejsFunction;
  readonly maintenanceSchedule: events.Rule;

  constructor(scope: Construct, id: string, props: SluiceStackProps = {}) {
    super(scope, id, props);

    this.bucket = new s3.Bucket(this, "Objects", {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      // SSE-S3 rather than KMS: no key policy to manage and no KMS request per GET/PUT, which
      // would add to a cost model that is all about requests (DESIGN.md).
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      // Objects are written once under unique keys and never overwritten.
      versioned: false,
      lifecycleRules: [
        {
          id: "abort-incomplete-multipart-uploads",
          abortIncompleteMultipartUploadAfter: Duration.days(1),
        },
      ],
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.table = new dynamodb.TableV2(this, "Metadata", {
      ...keySchema(),
      billing: dynamodb.Billing.onDemand(),
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // 64 letters and digits: about 380 bits, far above the 32 bytes HS256 needs
    // (MIN_SECRET_BYTES), and nothing a shell or a JSON string would need to escape. Encrypted
    // with aws/secretsmanager. Retained like the data: tokens signed with it stay valid
    // across a stack replacement, and deleting it is an operator's decision.
    this.jwtSecret = new secretsmanager.Secret(this, "JwtSecret", {
      description: "Sluice token signing secret (HS256); read by the HTTP function only",
      generateSecretString: {
        passwordLength: 64,
        excludePunctuation: true,
        includeSpace: false,
      },
      removalPolicy: RemovalPolicy.RETAIN,
    });

    const http = this.sluiceFunction("HttpFunction", {
      description: "Sluice HTTP API v1",
      roleDescription:
        "Sluice HTTP function: log objects, metadata table, token signing secret, own log group",
      entry: "http.ts",
      memorySize: 1024,
      timeout: Duration.seconds(60),
      environment: {
        // A waiting fetch holds an instance: cap it well inside the timeout.
        SLUICE_MAX_WAIT_MS: "20000",
        // Lambda's synchronous payload limit is 6 MB for the whole event.
        SLUICE_MAX_REQUEST_BYTES: "6000000",
        // Responses share that limit; base64 values grow by a third in JSON.
        SLUICE_MAX_FETCH_BYTES: "4000000",
        // functions/http.ts requires credentials whatever this says; said here for readers.
        SLUICE_AUTH: "required",
        // The ARN, never the value: the function reads the secret at init.
        SLUICE_JWT_SECRET_ARN: this.jwtSecret.secretArn,
      },
      grants: {
        objectActions: httpObjectActions,
        bucketActions: httpBucketActions,
        tableActions: httpTableActions,
        logActions: httpLogActions,
        secret: { actions: httpSecretActions, arn: this.jwtSecret.secretArn },
      },
    });
    this.httpFunction = http.fn;
    this.logGroup = http.logGroup;

    this.functionUrl = this.httpFunction.addFunctionUrl({
      authType: props.publicUrl
        ? lambda.FunctionUrlAuthType.NONE
        : lambda.FunctionUrlAuthType.AWS_IAM,
    });

    // Maintenance runs on a schedule, apart from the request path: a roll reads and rewrites
    // up to rollMaxBytes, listing the bucket takes as long as the bucket is big, and it needs
    // delete grants (objects, deleted topics' items) that the HTTP role must not have.
    const maintenance = this.sluiceFunction("MaintenanceFunction", {
      description: "Sluice maintenance: rolls segments, applies retention, cleans up objects",
      roleDescription:
        "Sluice maintenance function: roll, retire and delete log objects, write metadata",
      entry: "maintenance.ts",
      // A roll holds its chunks and the sealed copy built from them: up to twice rollMaxBytes
      // (256 MiB by default), so 512 MiB plus the runtime, the SDK and the pass's listings
      // (index and bucket listings are paged, one partition's at a time). That budget holds
      // only while one roll at a time is in memory: runMaintenance works on up to 8 partitions
      // at once (PARTITION_CONCURRENCY), so their rolls must not overlap, or this must grow
      // to about 8 × 512 MiB.
      memorySize: 1024,
      // Lambda's maximum. A pass's work grows with the backlog (up to 8 rolls per partition,
      // each a few seconds of S3 transfer at most), and its last steps, deleted topics and the
      // object listing, run only after every partition: a pass cut short every time would
      // never reach them. Unused time is not billed. A pass cut short is still harmless (the
      // next one aborts its pending intent once intentTimeoutMs, 30 min, has passed), and
      // that timeout stays above this one, so no pass aborts a roll that a pass still running
      // is doing. Passes that overlap (a long one and the next schedule) are safe too: every
      // index change is a conditional write.
      timeout: Duration.minutes(15),
      environment: { SLUICE_ORPHAN_GRACE_MS: String(MAINTENANCE_GRACE.toMilliseconds()) },
      grants: {
        objectActions: maintenanceObjectActions,
        bucketActions: maintenanceBucketActions,
        tableActions: maintenanceTableActions,
        logActions: maintenanceLogActions,
      },
    });
    this.maintenanceFunction = maintenance.fn;
    this.maintenanceLogGroup = maintenance.logGroup;

    // An asynchronous invoke: a failed pass shows in the function's Errors metric and Lambda
    // retries it (twice, by default); passes may overlap, since every index change is a
    // conditional write and deleting twice is harmless.
    this.maintenanceSchedule = new events.Rule(this, "MaintenanceSchedule", {
      description: "Runs the Sluice maintenance pass",
      schedule: events.Schedule.rate(MAINTENANCE_RATE),
      targets: [new targets.LambdaFunction(this.maintenanceFunction)],
    });

    new CfnOutput(this, "FunctionUrl", {
      value: this.functionUrl.url,
      description: props.publicUrl
        ? "Sluice HTTP API (public URL: Sluice authenticates every request)"
        : "Sluice HTTP API (AWS_IAM: SigV4-signed requests only, then Sluice's own credentials)",
    });
    new CfnOutput(this, "JwtSecretArn", {
      value: this.jwtSecret.secretArn,
      description:
        "Token signing secret: aws secretsmanager get-secret-value --secret-id <arn> (keep it secret)",
    });
    new CfnOutput(this, "BucketName", { value: this.bucket.bucketName });
    new CfnOutput(this, "TableName", { value: this.table.tableName });
    new CfnOutput(this, "MaintenanceFunctionName", {
      value: this.maintenanceFunction.functionName,
      description: "Run a maintenance pass now: aws lambda invoke --function-name <name> out.json",
    });
  }

  /**
   * A function from functions/<entry>, with its own log group and its own role that holds
   * exactly the given actions: no AWSLambdaBasicExecutionRole (logs on every group, `*`).
   */
  private sluiceFunction(
    id: string,
    props: {
      description: string;
      roleDescription: string;
      entry: string;
      memorySize: number;
      timeout: Duration;
      environment: Record<string, string>;
      grants: {
        objectActions: readonly string[];
        bucketActions: readonly string[];
        tableActions: readonly string[];
        logActions: readonly string[];
        /** Read access to one secret: the HTTP function's token signing secret. */
        secret?: { actions: readonly string[]; arn: string };
      };
    },
  ): { fn: NodejsFunction; logGroup: logs.LogGroup } {
    const logGroup = new logs.LogGroup(this, `${id}Logs`, {
      retention: logs.RetentionDays.ONE_MONTH,
    });
    const role = new iam.Role(this, `${id}Role`, {
      assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
      description: props.roleDescription,
    });
    const { grants } = props;
    const statements: [string, readonly string[], string][] = [
      ["LogObjects", grants.objectActions, this.bucket.arnForObjects("*")],
      ["LogBucket", grants.bucketActions, this.bucket.bucketArn],
      // The table has no secondary indexes (keySchema() refuses them), so no index ARNs.
      ["MetadataItems", grants.tableActions, this.table.tableArn],
      ["OwnLogGroup", grants.logActions, logGroup.logGroupArn],
    ];
    // The secret's own ARN (a Ref to the secret: the full ARN, suffix included), no wildcard.
    if (grants.secret)
      statements.push(["TokenSigningSecret", grants.secret.actions, grants.secret.arn]);
    for (const [sid, actions, resource] of statements) {
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({ sid, actions: [...actions], resources: [resource] }),
      );
    }
    const fn = new NodejsFunction(this, id, {
      ...bundledFunctionProps(props.entry),
      description: props.description,
      memorySize: props.memorySize,
      timeout: props.timeout,
      role,
      logGroup,
      environment: {
        SLUICE_BUCKET: this.bucket.bucketName,
        SLUICE_TABLE: this.table.tableName,
        ...props.environment,
        NODE_OPTIONS: "--enable-source-maps",
        LOG_LEVEL: "info",
      },
    });
    return { fn, logGroup };
  }
}

/** What every Sluice function shares: the runtime and how its handler is bundled. */
function bundledFunctionProps(entry: string) {
  return {
    entry: join(repoRoot, "functions", entry),
    handler: "handler",
    projectRoot: repoRoot,
    depsLockFilePath: join(repoRoot, "package-lock.json"),
    runtime: lambda.Runtime.NODEJS_22_X,
    architecture: lambda.Architecture.ARM_64,
    bundling: {
      format: OutputFormat.ESM,
      target: "node22",
      minify: true,
      sourceMap: true,
      // Stack traces need the mappings, not a copy of every source file.
      sourcesContent: false,
      // Prefer packages' ESM builds (the AWS SDK's tree-shake better).
      mainFields: ["module", "main"],
      // CommonJS dependencies bundled into an ES module still call require() for Node's
      // built-ins; give them one. The aliased import cannot clash with bundled code.
      banner:
        "import { createRequire as __sluiceCreateRequire } from 'node:module'; " +
        "const require = __sluiceCreateRequire(import.meta.url);",
      // Bundle everything, the AWS SDK included (one pinned version, tree-shaken), except
      // the SQLite driver: a native module that only the embedded mode loads.
      externalModules: ["better-sqlite3"],
      forceDockerBundling: false,
    },
  } satisfies NodejsFunctionProps;
}

/** The table's keys, read from the adapter's own CreateTable input so the two cannot drift. */
function keySchema(): Pick<dynamodb.TablePropsV2, "partitionKey" | "sortKey"> {
  const definition = tableDefinition("sluice");
  if (
    definition.GlobalSecondaryIndexes?.length ||
    definition.LocalSecondaryIndexes?.length ||
    definition.BillingMode !== "PAY_PER_REQUEST"
  ) {
    throw new Error(
      "tableDefinition changed (indexes or billing): update infra/sluice-stack.ts and its grants",
    );
  }
  const attribute = (keyType: "HASH" | "RANGE"): dynamodb.Attribute | undefined => {
    const name = definition.KeySchema?.find((k) => k.KeyType === keyType)?.AttributeName;
    if (name === undefined) return undefined;
    const type = definition.AttributeDefinitions?.find((a) => a.AttributeName === name);
    const types = {
      S: dynamodb.AttributeType.STRING,
      N: dynamodb.AttributeType.NUMBER,
      B: dynamodb.AttributeType.BINARY,
    };
    if (type?.AttributeType === undefined) throw new Error(`key ${name} has no attribute type`);
    return { name, type: types[type.AttributeType] };
  };
  const partitionKey = attribute("HASH");
  if (partitionKey === undefined) throw new Error("tableDefinition has no partition key");
  const sortKey = attribute("RANGE");
  return sortKey === undefined ? { partitionKey } : { partitionKey, sortKey };
}
