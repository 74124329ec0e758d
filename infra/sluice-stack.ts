import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CfnOutput, Duration, RemovalPolicy, Stack, type StackProps } from "aws-cdk-lib";
import * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import * as iam from "aws-cdk-lib/aws-iam";
import * as lambda from "aws-cdk-lib/aws-lambda";
import { NodejsFunction, OutputFormat } from "aws-cdk-lib/aws-lambda-nodejs";
import * as logs from "aws-cdk-lib/aws-logs";
import * as s3 from "aws-cdk-lib/aws-s3";
import type { Construct } from "constructs";
import { tableDefinition } from "../src/meta/dynamodb.js";

const repoRoot = fileURLToPath(new URL("..", import.meta.url));

export interface SluiceStackProps extends StackProps {
  /**
   * Serve the Function URL without authentication (`AuthType: NONE`): anyone with the URL can
   * create, write, read and delete topics. Off by default: the URL then takes only SigV4-signed
   * requests from principals allowed to invoke it (`httpFunction.grantInvokeUrl(principal)`:
   * `lambda:InvokeFunctionUrl`, plus `lambda:InvokeFunction` via the URL, as AWS now requires).
   * Sluice's own API authentication arrives later; until then, a public URL is for demos only.
   */
  publicUrl?: boolean;
}

/**
 * Exactly what the HTTP path sends, by SDK command (see DESIGN.md and the adapters):
 * - S3ObjectStore: PutObject (flush) and GetObject, whole or ranged (fetch). Listing and
 *   DeleteObjects belong to maintenance (orphans, retention), which is not deployed yet.
 * - DynamoMetaStore: GetCommand, QueryCommand and TransactWriteCommand. A transaction is
 *   authorized per item action; its items are Put, Update and Delete (topic delete), never
 *   ConditionCheck. CreateTable/DescribeTable (ensureTable) are for tests and local use only.
 */
export const httpObjectActions = ["s3:GetObject", "s3:PutObject"] as const;
/**
 * Not sent by the HTTP path: with it, a GET of a missing key answers 404 (which the adapter
 * reports as `not_found`) instead of 403 (`internal`), which matters once retention deletes
 * segments that a concurrent fetch is about to read.
 */
export const httpBucketActions = ["s3:ListBucket"] as const;
export const httpTableActions = [
  "dynamodb:DeleteItem",
  "dynamodb:GetItem",
  "dynamodb:PutItem",
  "dynamodb:Query",
  "dynamodb:UpdateItem",
] as const;
/** The function writes its own log group only; the stack creates that group. */
export const httpLogActions = ["logs:CreateLogStream", "logs:PutLogEvents"] as const;

/**
 * Sluice on AWS: one bucket for the immutable log objects, one DynamoDB table for the index
 * and offsets, and the HTTP API as a Lambda function behind a Function URL.
 */
export class SluiceStack extends Stack {
  readonly bucket: s3.Bucket;
  readonly table: dynamodb.TableV2;
  readonly logGroup: logs.LogGroup;
  readonly httpFunction: NodejsFunction;
  readonly functionUrl: lambda.FunctionUrl;

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

    this.logGroup = new logs.LogGroup(this, "HttpFunctionLogs", {
      retention: logs.RetentionDays.ONE_MONTH,
    });

    // A role of our own, without AWSLambdaBasicExecutionRole (logs on every group, `*`).
    const role = new iam.Role(this, "HttpFunctionRole", {
      assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
      description: "Sluice HTTP function: log objects, metadata table, own log group",
    });
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: "LogObjects",
        actions: [...httpObjectActions],
        resources: [this.bucket.arnForObjects("*")],
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: "LogBucket",
        actions: [...httpBucketActions],
        resources: [this.bucket.bucketArn],
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: "MetadataItems",
        actions: [...httpTableActions],
        // The table has no secondary indexes (keySchema() refuses them), so no index ARNs.
        resources: [this.table.tableArn],
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: "OwnLogGroup",
        actions: [...httpLogActions],
        resources: [this.logGroup.logGroupArn],
      }),
    );

    this.httpFunction = new NodejsFunction(this, "HttpFunction", {
      description: "Sluice HTTP API v1",
      entry: join(repoRoot, "functions", "http.ts"),
      handler: "handler",
      projectRoot: repoRoot,
      depsLockFilePath: join(repoRoot, "package-lock.json"),
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: 1024,
      timeout: Duration.seconds(60),
      role,
      logGroup: this.logGroup,
      environment: {
        SLUICE_BUCKET: this.bucket.bucketName,
        SLUICE_TABLE: this.table.tableName,
        // A waiting fetch holds an instance: cap it well inside the timeout.
        SLUICE_MAX_WAIT_MS: "20000",
        // Lambda's synchronous payload limit is 6 MB for the whole event.
        SLUICE_MAX_REQUEST_BYTES: "6000000",
        NODE_OPTIONS: "--enable-source-maps",
        LOG_LEVEL: "info",
      },
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
    });

    this.functionUrl = this.httpFunction.addFunctionUrl({
      authType: props.publicUrl
        ? lambda.FunctionUrlAuthType.NONE
        : lambda.FunctionUrlAuthType.AWS_IAM,
    });

    new CfnOutput(this, "FunctionUrl", {
      value: this.functionUrl.url,
      description: props.publicUrl
        ? "Sluice HTTP API (public: no authentication)"
        : "Sluice HTTP API (AWS_IAM: SigV4-signed requests only)",
    });
    new CfnOutput(this, "BucketName", { value: this.bucket.bucketName });
    new CfnOutput(this, "TableName", { value: this.table.tableName });
  }
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
