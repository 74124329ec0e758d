import { execFile } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { builtinModules } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { DeleteTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { App, type CfnElement } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import type { NodejsFunction } from "aws-cdk-lib/aws-lambda-nodejs";
import type { IConstruct } from "constructs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  MAINTENANCE_GRACE,
  SluiceStack,
  httpBucketActions,
  httpLogActions,
  httpObjectActions,
  httpSecretActions,
  httpTableActions,
  maintenanceBucketActions,
  maintenanceLogActions,
  maintenanceObjectActions,
  maintenanceTableActions,
  type SluiceStackProps,
} from "../../infra/sluice-stack.js";
import { ulid } from "ulid";
import { logConfigDefaults, type LogConfig } from "../../src/config.js";
import { chunkKey, segmentKey } from "../../src/log/keys.js";
import { SluiceLog } from "../../src/log/log.js";
import { logger } from "../../src/logger.js";
import { DynamoMetaStore, ensureTable, tableDefinition } from "../../src/meta/dynamodb.js";
import { S3ObjectStore } from "../../src/storage/s3.js";
import { makeHarness } from "../support/harness.js";
import { makeS3Client, s3Endpoint } from "../support/standins/s3.js";

/**
 * The cloud deployment, synthesized offline: no AWS account, no Docker (esbuild bundles
 * locally). One synthesis bundles both functions for real, and every assertion on the default
 * stack reads that one template; variants skip bundling.
 */

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
/** The same context (feature flags) as `cdk synth` reads from cdk.json. */
const cdkContext = (
  JSON.parse(readFileSync(join(repoRoot, "cdk.json"), "utf8")) as {
    context?: Record<string, unknown>;
  }
).context;
const MiB = 1024 * 1024;
/** The bundle may grow, but not unnoticed: it is loaded on every cold start. */
const BUNDLE_BUDGET_BYTES = 2 * 1024 * 1024;

interface Synth {
  stack: SluiceStack;
  template: Template;
  outdir: string;
}

const outdirs: string[] = [];

function synth(props: SluiceStackProps, { bundle }: { bundle: boolean }): Synth {
  const outdir = mkdtempSync(join(tmpdir(), "sluice-cdk-"));
  outdirs.push(outdir);
  const app = new App({
    outdir,
    context: { ...cdkContext, ...(bundle ? {} : { "aws:cdk:bundling-stacks": [] }) },
  });
  const stack = new SluiceStack(app, "Sluice", props);
  return { stack, template: Template.fromStack(stack), outdir };
}

afterAll(() => {
  for (const dir of outdirs) rmSync(dir, { recursive: true, force: true });
});

const logicalId = (s: Synth, construct: IConstruct) =>
  s.stack.getLogicalId(construct.node.defaultChild as CfnElement);

type Statement = {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  NotAction?: unknown;
  NotResource?: unknown;
  Principal?: unknown;
  Condition?: unknown;
};

/** Every statement in every policy attached to the role, inline or separate. */
function roleStatements(template: Template, roleId: string): Statement[] {
  const statements: Statement[] = [];
  for (const policy of Object.values(template.findResources("AWS::IAM::Policy"))) {
    const roles = policy.Properties.Roles as { Ref: string }[];
    if (roles.some((r) => r.Ref === roleId))
      statements.push(...policy.Properties.PolicyDocument.Statement);
  }
  const role = template.findResources("AWS::IAM::Role")[roleId];
  for (const inline of role?.Properties.Policies ?? [])
    statements.push(...inline.PolicyDocument.Statement);
  return statements;
}

const asList = <T>(value: T | T[]): T[] => (Array.isArray(value) ? value : [value]);

/** The role's actions grouped by resource (sorted), after checking every statement's shape. */
function actionsByResource(template: Template, roleId: string): Record<string, string[]> {
  const byResource = new Map<string, string[]>();
  for (const st of roleStatements(template, roleId)) {
    expect(st.Effect).toBe("Allow");
    expect(st.NotAction).toBeUndefined();
    expect(st.NotResource).toBeUndefined();
    expect(st.Condition).toBeUndefined();
    for (const action of asList(st.Action)) expect(action).not.toContain("*");
    for (const resource of asList(st.Resource)) {
      expect(resource).not.toBe("*");
      const key = JSON.stringify(resource);
      byResource.set(key, [...(byResource.get(key) ?? []), ...asList(st.Action)]);
    }
  }
  return Object.fromEntries(
    [...byResource].map(([resource, actions]) => [resource, [...actions].sort()]),
  );
}

/**
 * TransactWriteItems has no IAM action of its own: each of its items is authorized as the
 * single-item action it stands for.
 */
const transactItemActions: Record<string, string> = {
  Put: "dynamodb:PutItem",
  Update: "dynamodb:UpdateItem",
  Delete: "dynamodb:DeleteItem",
  ConditionCheck: "dynamodb:ConditionCheckItem",
};

/** The Lambda permissions (resource policy statements) on one function. */
const permissionsOf = (template: Template, functionId: string) =>
  Object.values(template.findResources("AWS::Lambda::Permission")).filter(
    (p) =>
      JSON.stringify(p.Properties.FunctionName) ===
      JSON.stringify({ "Fn::GetAtt": [functionId, "Arn"] }),
  );

describe("SluiceStack, default props, with both functions bundled for real", () => {
  let s: Synth;
  beforeAll(() => {
    s = synth({}, { bundle: true });
  }, 120_000);

  describe("object bucket", () => {
    it("is encrypted, private, unversioned, aborts stale multipart uploads, and is retained", () => {
      s.template.resourceCountIs("AWS::S3::Bucket", 1);
      s.template.hasResource("AWS::S3::Bucket", {
        DeletionPolicy: "Retain",
        UpdateReplacePolicy: "Retain",
        Properties: {
          BucketEncryption: {
            ServerSideEncryptionConfiguration: [
              { ServerSideEncryptionByDefault: { SSEAlgorithm: "AES256" } },
            ],
          },
          PublicAccessBlockConfiguration: {
            BlockPublicAcls: true,
            BlockPublicPolicy: true,
            IgnorePublicAcls: true,
            RestrictPublicBuckets: true,
          },
          OwnershipControls: { Rules: [{ ObjectOwnership: "BucketOwnerEnforced" }] },
          VersioningConfiguration: Match.absent(),
          LifecycleConfiguration: {
            Rules: [
              Match.objectLike({
                Status: "Enabled",
                AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
              }),
            ],
          },
        },
      });
    });

    it("denies every request not made over TLS (1.2 or later)", () => {
      const bucket = s.stack.resolve(s.stack.bucket.bucketArn);
      const objects = s.stack.resolve(s.stack.bucket.arnForObjects("*"));
      s.template.hasResourceProperties("AWS::S3::BucketPolicy", {
        Bucket: { Ref: logicalId(s, s.stack.bucket) },
        PolicyDocument: {
          Statement: Match.arrayWith([
            {
              Effect: "Deny",
              Principal: { AWS: "*" },
              Action: "s3:*",
              Condition: { Bool: { "aws:SecureTransport": "false" } },
              Resource: [bucket, objects],
            },
            Match.objectLike({
              Effect: "Deny",
              Condition: { NumericLessThan: { "s3:TlsVersion": 1.2 } },
            }),
          ]),
        },
      });
      // No statement of the bucket policy allows anything to anyone.
      const policies = Object.values(s.template.findResources("AWS::S3::BucketPolicy"));
      const effects = policies.flatMap((p) =>
        (p.Properties.PolicyDocument.Statement as Statement[]).map((st) => st.Effect),
      );
      expect(new Set(effects)).toEqual(new Set(["Deny"]));
    });
  });

  describe("metadata table", () => {
    it("has the adapter's key schema (pk/sk strings), no indexes, on-demand billing, PITR", () => {
      const definition = tableDefinition("any");
      expect(definition.KeySchema).toEqual([
        { AttributeName: "pk", KeyType: "HASH" },
        { AttributeName: "sk", KeyType: "RANGE" },
      ]);
      s.template.resourceCountIs("AWS::DynamoDB::GlobalTable", 1);
      s.template.resourceCountIs("AWS::DynamoDB::Table", 0);
      s.template.hasResource("AWS::DynamoDB::GlobalTable", {
        DeletionPolicy: "Retain",
        UpdateReplacePolicy: "Retain",
        Properties: {
          KeySchema: definition.KeySchema,
          AttributeDefinitions: Match.exact(definition.AttributeDefinitions),
          BillingMode: "PAY_PER_REQUEST",
          GlobalSecondaryIndexes: Match.absent(),
          LocalSecondaryIndexes: Match.absent(),
          Replicas: [
            Match.objectLike({
              PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
              DeletionProtectionEnabled: true,
            }),
          ],
        },
      });
    });
  });

  describe("token signing secret", () => {
    it("is generated (64 letters and digits), encrypted with aws/secretsmanager, and retained", () => {
      s.template.resourceCountIs("AWS::SecretsManager::Secret", 1);
      s.template.hasResource("AWS::SecretsManager::Secret", {
        DeletionPolicy: "Retain",
        UpdateReplacePolicy: "Retain",
        Properties: {
          GenerateSecretString: Match.exact({
            PasswordLength: 64,
            ExcludePunctuation: true,
            IncludeSpace: false,
          }),
          // No customer managed key: the AWS managed key needs no kms:Decrypt grant.
          KmsKeyId: Match.absent(),
          SecretString: Match.absent(),
        },
      });
      // Nobody but the HTTP role is granted anything on it, and it has no resource policy.
      s.template.resourceCountIs("AWS::SecretsManager::ResourcePolicy", 0);
      s.template.resourceCountIs("AWS::SecretsManager::RotationSchedule", 0);
    });

    it("is output by ARN, for operators who sign tokens", () => {
      s.template.hasOutput("JwtSecretArn", { Value: { Ref: logicalId(s, s.stack.jwtSecret) } });
    });

    it("is readable by the HTTP role alone, with exactly one statement", () => {
      const secretRef = { Ref: logicalId(s, s.stack.jwtSecret) };
      const statementsOf = (role: IConstruct) =>
        roleStatements(s.template, logicalId(s, role)).filter((st) =>
          asList(st.Action).some((a) => a.startsWith("secretsmanager:")),
        );
      expect(statementsOf(s.stack.httpFunction.role!)).toEqual([
        {
          Sid: "TokenSigningSecret",
          Effect: "Allow",
          Action: "secretsmanager:GetSecretValue",
          Resource: secretRef,
        },
      ]);
      expect(statementsOf(s.stack.maintenanceFunction.role!)).toEqual([]);
      // No other policy in the stack names the secret or any secretsmanager or kms action.
      const policies = Object.values(s.template.findResources("AWS::IAM::Policy"));
      const all = policies.flatMap((p) => p.Properties.PolicyDocument.Statement as Statement[]);
      const onSecret = all.filter(
        (st) =>
          JSON.stringify(st.Resource).includes(logicalId(s, s.stack.jwtSecret)) ||
          asList(st.Action).some((a) => /^(secretsmanager|kms):/.test(a)),
      );
      expect(onSecret).toHaveLength(1);
      expect(httpSecretActions).toEqual(["secretsmanager:GetSecretValue"]);
    });
  });

  describe("HTTP function", () => {
    it("runs on Node.js 22, arm64, 1 GB, 60 s, with exactly the expected environment", () => {
      // The HTTP function and the maintenance function; nothing else (no custom resources).
      s.template.resourceCountIs("AWS::Lambda::Function", 2);
      s.template.hasResourceProperties("AWS::Lambda::Function", {
        Runtime: "nodejs22.x",
        Architectures: ["arm64"],
        MemorySize: 1024,
        Timeout: 60,
        Handler: "index.handler",
        Role: { "Fn::GetAtt": [logicalId(s, s.stack.httpFunction.role!), "Arn"] },
        LoggingConfig: { LogGroup: { Ref: logicalId(s, s.stack.logGroup) } },
        Environment: {
          Variables: Match.exact({
            SLUICE_BUCKET: { Ref: logicalId(s, s.stack.bucket) },
            SLUICE_TABLE: { Ref: logicalId(s, s.stack.table) },
            SLUICE_MAX_WAIT_MS: "20000",
            SLUICE_MAX_REQUEST_BYTES: "6000000",
            SLUICE_MAX_FETCH_BYTES: "4000000",
            SLUICE_AUTH: "required",
            // The secret's ARN (Ref of a secret is its ARN), never its value.
            SLUICE_JWT_SECRET_ARN: { Ref: logicalId(s, s.stack.jwtSecret) },
            NODE_OPTIONS: "--enable-source-maps",
            LOG_LEVEL: "info",
          }),
        },
      });
      s.template.hasResourceProperties("AWS::Logs::LogGroup", { RetentionInDays: 30 });
    });

    it("reads the token secret by ARN: its value is in no environment and nowhere in the template", () => {
      const functions = Object.values(s.template.findResources("AWS::Lambda::Function"));
      for (const fn of functions) {
        const env = (fn.Properties.Environment?.Variables ?? {}) as Record<string, unknown>;
        expect(env).not.toHaveProperty("SLUICE_JWT_SECRET");
      }
      // A dynamic reference or a SecretString anywhere would put the value in the
      // deployed configuration (Lambda's environment is readable with lambda:GetFunction).
      const text = JSON.stringify(s.template.toJSON());
      expect(text).not.toMatch(/resolve:secretsmanager/);
      expect(text).not.toMatch(/"SecretString"/);
      const maintenance =
        s.template.findResources("AWS::Lambda::Function")[
          logicalId(s, s.stack.maintenanceFunction)
        ];
      expect(JSON.stringify(maintenance?.Properties.Environment)).not.toContain(
        logicalId(s, s.stack.jwtSecret),
      );
    });

    it("has a role with exactly the actions the HTTP path needs, on exactly its resources", () => {
      const roleId = logicalId(s, s.stack.httpFunction.role!);
      const role = s.template.findResources("AWS::IAM::Role")[roleId];
      expect(role?.Properties.ManagedPolicyArns).toBeUndefined();
      expect(role?.Properties.AssumeRolePolicyDocument.Statement).toEqual([
        {
          Action: "sts:AssumeRole",
          Effect: "Allow",
          Principal: { Service: "lambda.amazonaws.com" },
        },
      ]);
      s.template.resourceCountIs("AWS::IAM::ManagedPolicy", 0);

      const actual = actionsByResource(s.template, roleId);
      const key = (token: string) => JSON.stringify(s.stack.resolve(token));
      expect(actual).toEqual({
        [key(s.stack.bucket.arnForObjects("*"))]: ["s3:GetObject", "s3:PutObject"],
        [key(s.stack.bucket.bucketArn)]: ["s3:ListBucket"],
        [key(s.stack.table.tableArn)]: [
          "dynamodb:BatchGetItem",
          "dynamodb:ConditionCheckItem",
          "dynamodb:DeleteItem",
          "dynamodb:GetItem",
          "dynamodb:PutItem",
          "dynamodb:Query",
          "dynamodb:UpdateItem",
        ],
        [key(s.stack.logGroup.logGroupArn)]: ["logs:CreateLogStream", "logs:PutLogEvents"],
        // The one secret, by its own ARN: no wildcard, no other secret.
        [key(s.stack.jwtSecret.secretArn)]: ["secretsmanager:GetSecretValue"],
      });

      const all = Object.values(actual).flat();
      // Deleting is the maintenance function's alone: no request can delete log data.
      expect(all).not.toContain("s3:DeleteObject");
      expect(all).not.toContain("dynamodb:Scan");
      expect(all).not.toContain("dynamodb:BatchWriteItem");
    });

    it("grants exactly what the adapters' SDK commands on the HTTP path need", () => {
      // The IAM action each SDK command needs; null for commands sent only outside the HTTP
      // path (maintenance: listing, deleting, purging; tests and local use: ensureTable). A new command
      // in an adapter fails this test until someone decides where it belongs.
      const s3Commands: Record<string, string | null> = {
        PutObjectCommand: "s3:PutObject",
        GetObjectCommand: "s3:GetObject",
        ListObjectsV2Command: null,
        DeleteObjectsCommand: null,
      };
      const dynamoCommands: Record<string, string | null> = {
        GetCommand: "dynamodb:GetItem",
        QueryCommand: "dynamodb:Query",
        PutCommand: "dynamodb:PutItem",
        DeleteCommand: "dynamodb:DeleteItem",
        // Authorized per item action, below: there is no TransactWriteItems IAM action.
        TransactWriteCommand: null,
        // getProducers: an idempotent produce's producer states.
        BatchGetCommand: "dynamodb:BatchGetItem",
        // purgePartition: deleted topics' items, by maintenance only.
        BatchWriteCommand: null,
        CreateTableCommand: null,
        DescribeTableCommand: null,
      };
      // The function reads its token signing secret itself, once, at init.
      const secretsCommands: Record<string, string | null> = {
        GetSecretValueCommand: "secretsmanager:GetSecretValue",
      };
      const scan = (file: string, known: Record<string, string | null>) => {
        const source = readFileSync(join(repoRoot, file), "utf8");
        // `new XCommand(` or, from a module imported on demand, `new sdk.XCommand(`.
        const commands = new Set(
          [...source.matchAll(/new (?:[\w$]+\.)?(\w+Command)\(/g)].map((m) => m[1]!),
        );
        expect([...commands].filter((c) => !(c in known))).toEqual([]);
        const actions = [...commands].map((c) => known[c]).filter((a) => typeof a === "string");
        return { source, commands, actions };
      };

      const s3 = scan("src/storage/s3.ts", s3Commands);
      const dynamo = scan("src/meta/dynamodb.ts", dynamoCommands);
      const needed = new Set([...s3.actions, ...dynamo.actions]);
      if (dynamo.commands.has("TransactWriteCommand")) {
        for (const m of dynamo.source.matchAll(/\b(Put|Update|Delete|ConditionCheck): \{/g)) {
          needed.add(transactItemActions[m[1]!]!);
        }
      }
      expect([...needed].sort()).toEqual([...httpObjectActions, ...httpTableActions].sort());
      const secrets = scan("functions/http.ts", secretsCommands);
      expect(secrets.commands).toEqual(new Set(["GetSecretValueCommand"]));
      expect(secrets.actions).toEqual([...httpSecretActions]);
      // ListBucket is granted on purpose (404 rather than 403 for a missing key), and the
      // log actions are the runtime's, not the adapters'.
      expect(httpBucketActions).toEqual(["s3:ListBucket"]);
      expect(httpLogActions).toEqual(["logs:CreateLogStream", "logs:PutLogEvents"]);
    });

    it("is served by a Function URL that takes only SigV4-signed (AWS_IAM) requests", () => {
      s.template.resourceCountIs("AWS::Lambda::Url", 1);
      s.template.hasResourceProperties("AWS::Lambda::Url", {
        AuthType: "AWS_IAM",
        TargetFunctionArn: { "Fn::GetAtt": [logicalId(s, s.stack.httpFunction), "Arn"] },
      });
      // No resource policy opens the function to anyone.
      expect(permissionsOf(s.template, logicalId(s, s.stack.httpFunction))).toEqual([]);
    });

    it("outputs the URL, the bucket, the table and the maintenance function", () => {
      s.template.hasOutput("FunctionUrl", {
        Value: { "Fn::GetAtt": [logicalId(s, s.stack.functionUrl), "FunctionUrl"] },
      });
      s.template.hasOutput("BucketName", { Value: { Ref: logicalId(s, s.stack.bucket) } });
      s.template.hasOutput("TableName", { Value: { Ref: logicalId(s, s.stack.table) } });
      s.template.hasOutput("MaintenanceFunctionName", {
        Value: { Ref: logicalId(s, s.stack.maintenanceFunction) },
      });
    });
  });

  describe("maintenance function", () => {
    const fnId = () => logicalId(s, s.stack.maintenanceFunction);
    const roleId = () => logicalId(s, s.stack.maintenanceFunction.role!);

    it("runs on Node.js 22, arm64, 1 GB, 15 min, with exactly the expected environment", () => {
      const fn = s.template.findResources("AWS::Lambda::Function")[fnId()];
      expect(fn?.Properties).toMatchObject({
        Runtime: "nodejs22.x",
        Architectures: ["arm64"],
        MemorySize: 1024,
        Timeout: 900,
        Handler: "index.handler",
        Role: { "Fn::GetAtt": [roleId(), "Arn"] },
        LoggingConfig: { LogGroup: { Ref: logicalId(s, s.stack.maintenanceLogGroup) } },
      });
      expect(fn?.Properties.Environment.Variables).toEqual({
        SLUICE_BUCKET: { Ref: logicalId(s, s.stack.bucket) },
        SLUICE_TABLE: { Ref: logicalId(s, s.stack.table) },
        SLUICE_ORPHAN_GRACE_MS: "3600000",
        NODE_OPTIONS: "--enable-source-maps",
        LOG_LEVEL: "info",
      });
      expect(s.stack.maintenanceLogGroup).not.toBe(s.stack.logGroup);
      const group =
        s.template.findResources("AWS::Logs::LogGroup")[logicalId(s, s.stack.maintenanceLogGroup)];
      expect(group?.Properties.RetentionInDays).toBe(30);
    });

    it("leaves an upload alone for far longer than a writer can take to commit it", () => {
      // A writer uploads, then commits within one invocation of the HTTP function.
      const http =
        s.template.findResources("AWS::Lambda::Function")[logicalId(s, s.stack.httpFunction)];
      const httpTimeoutMs = (http?.Properties.Timeout as number) * 1000;
      expect(MAINTENANCE_GRACE.toMilliseconds()).toBeGreaterThanOrEqual(10 * httpTimeoutMs);
    });

    it("holds a roll in memory, and never outlives the intents its own rolls hold", () => {
      const fn = s.template.findResources("AWS::Lambda::Function")[fnId()];
      const memoryBytes = (fn?.Properties.MemorySize as number) * MiB;
      const timeoutMs = (fn?.Properties.Timeout as number) * 1000;
      // The chunks and the sealed copy, with room for the runtime and the pass's listings.
      expect(memoryBytes).toBeGreaterThanOrEqual(2 * logConfigDefaults.rollMaxBytes + 256 * MiB);
      // A pass stamps a partition's intents when it starts on it: one still running must not
      // look timed out to the next pass, which would abort its roll.
      expect(timeoutMs).toBeLessThan(logConfigDefaults.intentTimeoutMs);
      // Replaced objects are deleted a grace period after that stamp, which may be a timeout
      // early: a reader of the old index entry (one HTTP invocation) must still find them.
      const http =
        s.template.findResources("AWS::Lambda::Function")[logicalId(s, s.stack.httpFunction)];
      const httpTimeoutMs = (http?.Properties.Timeout as number) * 1000;
      expect(MAINTENANCE_GRACE.toMilliseconds()).toBeGreaterThan(timeoutMs + 10 * httpTimeoutMs);
    });

    it("is invoked every 15 minutes by one schedule rule, and by nothing else", () => {
      s.template.resourceCountIs("AWS::Events::Rule", 1);
      const rule =
        s.template.findResources("AWS::Events::Rule")[logicalId(s, s.stack.maintenanceSchedule)];
      expect(rule?.Properties).toMatchObject({
        ScheduleExpression: "rate(15 minutes)",
        State: "ENABLED",
      });
      expect(rule?.Properties.EventPattern).toBeUndefined();
      expect(rule?.Properties.Targets).toEqual([
        { Arn: { "Fn::GetAtt": [fnId(), "Arn"] }, Id: expect.any(String) },
      ]);
      // The one resource policy statement: EventBridge, for this rule only.
      expect(permissionsOf(s.template, fnId()).map((p) => p.Properties)).toEqual([
        {
          Action: "lambda:InvokeFunction",
          FunctionName: { "Fn::GetAtt": [fnId(), "Arn"] },
          Principal: "events.amazonaws.com",
          SourceArn: { "Fn::GetAtt": [logicalId(s, s.stack.maintenanceSchedule), "Arn"] },
        },
      ]);
      s.template.resourceCountIs("AWS::Lambda::Permission", 1);
    });

    it("has a role of its own with exactly the actions maintenance needs, on exactly its resources", () => {
      expect(roleId()).not.toBe(logicalId(s, s.stack.httpFunction.role!));
      const role = s.template.findResources("AWS::IAM::Role")[roleId()];
      expect(role?.Properties.ManagedPolicyArns).toBeUndefined();
      expect(role?.Properties.AssumeRolePolicyDocument.Statement).toEqual([
        {
          Action: "sts:AssumeRole",
          Effect: "Allow",
          Principal: { Service: "lambda.amazonaws.com" },
        },
      ]);

      const actual = actionsByResource(s.template, roleId());
      const key = (token: string) => JSON.stringify(s.stack.resolve(token));
      expect(actual).toEqual({
        [key(s.stack.bucket.arnForObjects("*"))]: [
          "s3:DeleteObject",
          "s3:GetObject",
          "s3:PutObject",
        ],
        [key(s.stack.bucket.bucketArn)]: ["s3:ListBucket"],
        [key(s.stack.table.tableArn)]: [
          "dynamodb:BatchWriteItem",
          "dynamodb:ConditionCheckItem",
          "dynamodb:DeleteItem",
          "dynamodb:GetItem",
          "dynamodb:PutItem",
          "dynamodb:Query",
          "dynamodb:UpdateItem",
        ],
        [key(s.stack.maintenanceLogGroup.logGroupArn)]: [
          "logs:CreateLogStream",
          "logs:PutLogEvents",
        ],
      });
      // Nothing that reads a whole table, and nothing on the bucket or table themselves.
      const all = Object.values(actual).flat();
      for (const action of ["dynamodb:Scan", "s3:DeleteBucket", "dynamodb:DeleteTable"]) {
        expect(all).not.toContain(action);
      }
      // The token signing secret is the HTTP function's alone.
      expect(all.filter((a) => a.startsWith("secretsmanager:") || a.startsWith("kms:"))).toEqual(
        [],
      );
      expect(maintenanceObjectActions).toEqual(["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]);
      expect(maintenanceBucketActions).toEqual(["s3:ListBucket"]);
      expect(maintenanceTableActions).toEqual([
        "dynamodb:BatchWriteItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
      ]);
      expect(maintenanceLogActions).toEqual(["logs:CreateLogStream", "logs:PutLogEvents"]);
    });
  });

  describe("bundles", () => {
    const functions = [
      { name: "HTTP", fn: () => s.stack.httpFunction },
      { name: "maintenance", fn: () => s.stack.maintenanceFunction },
    ];
    const bundleDir = (fn: NodejsFunction) => {
      const resource = s.template.findResources("AWS::Lambda::Function")[logicalId(s, fn)]!;
      const zip = resource.Properties.Code.S3Key as string;
      return join(s.outdir, `asset.${zip.replace(/\.zip$/, "")}`);
    };

    it("are two different bundles", () => {
      expect(bundleDir(s.stack.maintenanceFunction)).not.toBe(bundleDir(s.stack.httpFunction));
    });

    it.each(functions)("$name: one ES module with a source map, within the size budget", (f) => {
      const dir = bundleDir(f.fn());
      const size = statSync(join(dir, "index.mjs")).size;
      expect(size).toBeGreaterThan(100_000);
      expect(size).toBeLessThan(BUNDLE_BUDGET_BYTES);
      expect(statSync(join(dir, "index.mjs.map")).size).toBeGreaterThan(0);
      const code = readFileSync(join(dir, "index.mjs"), "utf8");
      expect(code.startsWith("import { createRequire as __sluiceCreateRequire }")).toBe(true);
    });

    it.each(functions)(
      "$name: imports nothing but Node's built-ins and the embedded-only better-sqlite3",
      (f) => {
        const code = readFileSync(join(bundleDir(f.fn()), "index.mjs"), "utf8");
        const specifiers = new Set(
          [
            ...code.matchAll(
              /\bimport\s*(?:[\w$]+|\*\s*as\s*[\w$]+|\{[^}]*\})?\s*(?:,\s*\{[^}]*\})?\s*from\s*["']([^"']+)["']/g,
            ),
            ...code.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g),
          ].map((m) => m[1]!),
        );
        const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
        const foreign = [...specifiers].filter((m) => !builtins.has(m));
        // The AWS SDK is bundled (the runtime's copy is not used), and nothing else is external.
        expect(foreign.filter((m) => m !== "better-sqlite3")).toEqual([]);
      },
    );

    /**
     * Imports the bundle in a directory without node_modules, as Lambda does, with only what
     * Lambda would set: the cloud path, a region, credentials; no network at init.
     */
    const initBundle = (fn: NodejsFunction, env: Record<string, string> = {}) => {
      const dir = mkdtempSync(join(tmpdir(), "sluice-lambda-task-"));
      outdirs.push(dir);
      copyFileSync(join(bundleDir(fn), "index.mjs"), join(dir, "index.mjs"));
      copyFileSync(join(bundleDir(fn), "index.mjs.map"), join(dir, "index.mjs.map"));
      const url = pathToFileURL(join(dir, "index.mjs")).href;
      return new Promise<{ code: number | null; stdout: string; stderr: string }>(
        (resolve, reject) => {
          const child = execFile(
            process.execPath,
            [
              "--input-type=module",
              "-e",
              `const m = await import(${JSON.stringify(url)}); console.log(typeof m.handler);`,
            ],
            {
              cwd: dir,
              encoding: "utf8",
              timeout: 30_000,
              env: {
                PATH: process.env.PATH,
                SLUICE_BUCKET: "dummy-bucket",
                SLUICE_TABLE: "dummy-table",
                AWS_REGION: "us-east-1",
                AWS_ACCESS_KEY_ID: "AKIAIOSFODNN7EXAMPLE",
                AWS_SECRET_ACCESS_KEY: "dummy",
                LOG_LEVEL: "silent",
                NODE_OPTIONS: "--enable-source-maps",
                ...env,
              },
            },
            (_err, stdout, stderr) => resolve({ code: child.exitCode, stdout, stderr }),
          );
          child.on("error", reject);
        },
      );
    };

    // Regression: a static import of better-sqlite3 was hoisted to the top of the ES module
    // bundle, so the Lambda, which has no node_modules, failed at init with ERR_MODULE_NOT_FOUND.
    // Each check starts a Node process: the two run side by side.
    it.concurrent.for(functions)(
      "$name: initializes the cloud path in a directory without node_modules, as Lambda does",
      async (f, { expect }) => {
        const result = await initBundle(f.fn());
        expect(result.stderr).not.toMatch(/ERR_MODULE_NOT_FOUND/);
        expect(result.code).toBe(0);
        expect(result.stdout.trim()).toBe("function");
      },
    );

    // The Secrets Manager client is imported on demand: it must be in the bundle all the same,
    // and a secret that cannot be read must stop the instance at init, not serve without it.
    it("HTTP: with a secret ARN, reads it at init with the bundled client, and fails closed", async () => {
      const arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:SluiceJwtSecret-AbCdEf";
      const result = await initBundle(s.stack.httpFunction, {
        SLUICE_JWT_SECRET_ARN: arn,
        // Nothing listens there: the read fails at once.
        AWS_ENDPOINT_URL_SECRETS_MANAGER: "http://127.0.0.1:9",
        AWS_MAX_ATTEMPTS: "1",
      });
      expect(result.stderr).not.toMatch(/ERR_MODULE_NOT_FOUND|Cannot find (module|package)/);
      expect(result.stderr).toContain(`cannot read the token signing secret ${arn}`);
      expect(result.code).not.toBe(0);
      expect(result.stdout.trim()).toBe("");
    });
  });
});

describe("SluiceStack with publicUrl: true", () => {
  let s: Synth;
  beforeAll(() => {
    s = synth({ publicUrl: true }, { bundle: false });
  }, 60_000);

  it("opens the Function URL without auth, and only through the URL", () => {
    s.template.hasResourceProperties("AWS::Lambda::Url", { AuthType: "NONE" });
    const fn = { "Fn::GetAtt": [logicalId(s, s.stack.httpFunction), "Arn"] };
    s.template.hasResourceProperties("AWS::Lambda::Permission", {
      Action: "lambda:InvokeFunctionUrl",
      Principal: "*",
      FunctionUrlAuthType: "NONE",
      FunctionName: fn,
    });
    s.template.hasResourceProperties("AWS::Lambda::Permission", {
      Action: "lambda:InvokeFunction",
      Principal: "*",
      InvokedViaFunctionUrl: true,
      FunctionName: fn,
    });
    expect(permissionsOf(s.template, logicalId(s, s.stack.httpFunction))).toHaveLength(2);
  });

  it("changes nothing else: the same data grants, and maintenance stays private", () => {
    const actionsOf = (role: IConstruct) =>
      roleStatements(s.template, logicalId(s, role))
        .flatMap((st) => asList(st.Action))
        .sort();
    expect(actionsOf(s.stack.httpFunction.role!)).toEqual(
      [
        ...httpObjectActions,
        ...httpBucketActions,
        ...httpTableActions,
        ...httpLogActions,
        ...httpSecretActions,
      ].sort(),
    );
    expect(actionsOf(s.stack.maintenanceFunction.role!)).toEqual(
      [
        ...maintenanceObjectActions,
        ...maintenanceBucketActions,
        ...maintenanceTableActions,
        ...maintenanceLogActions,
      ].sort(),
    );
    const maintenance = permissionsOf(s.template, logicalId(s, s.stack.maintenanceFunction));
    expect(maintenance.map((p) => p.Properties.Principal)).toEqual(["events.amazonaws.com"]);
  });
});

/**
 * The maintenance grants against what a pass really sends: one full pass (SluiceLog.
 * runMaintenance, as functions/maintenance.ts runs it) over the S3 and DynamoDB adapters (the
 * local stand-ins test/global-setup.ts starts), with every SDK operation recorded as the clients
 * send it. The data is set up so that every step of the pass has work: a done intent past the
 * grace period and a pending one past its timeout, a sealed segment beyond retention.bytes,
 * chunks to roll, an orphan upload, and a deleted topic's items and objects.
 */
describe("maintenance grants, checked against the commands a pass sends", () => {
  /**
   * The IAM action each low-level SDK operation is authorized as; null for TransactWriteItems,
   * authorized per item (transactItemActions). A new operation fails the test.
   */
  const iamAction: Record<string, string | null> = {
    ListObjectsV2Command: "s3:ListBucket",
    // Multi-object delete is authorized per key; there is no s3:DeleteObjects action.
    DeleteObjectsCommand: "s3:DeleteObject",
    GetObjectCommand: "s3:GetObject",
    PutObjectCommand: "s3:PutObject",
    GetItemCommand: "dynamodb:GetItem",
    QueryCommand: "dynamodb:Query",
    PutItemCommand: "dynamodb:PutItem",
    UpdateItemCommand: "dynamodb:UpdateItem",
    DeleteItemCommand: "dynamodb:DeleteItem",
    // Whatever its requests (puts or deletes), a batch is authorized as BatchWriteItem alone.
    BatchWriteItemCommand: "dynamodb:BatchWriteItem",
    TransactWriteItemsCommand: null,
  };
  /** Short enough that the injected clock passes them all; what each guards is not tested here. */
  const passConfig: LogConfig = {
    ...logConfigDefaults,
    rollMinAgeMs: 0,
    orphanGraceMs: 60_000,
    commitTimeoutMs: 1_000,
    intentTimeoutMs: 120_000,
  };

  let cleanup: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const step of cleanup.reverse()) await step();
    cleanup = [];
  });

  it("sends only commands that the maintenance role's actions allow, and needs each of them", async () => {
    const s3 = await s3Endpoint();
    cleanup.push(s3.stop);
    const dynamo = new DynamoDBClient({});
    cleanup.push(() => Promise.resolve(dynamo.destroy()));
    const table = `sluice-grants-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
    await ensureTable(dynamo, table);
    cleanup.push(async () => {
      await dynamo.send(new DeleteTableCommand({ TableName: table }));
    });

    // Set up through clients of their own, which nothing records.
    const writerS3 = makeS3Client(s3.endpoint);
    cleanup.push(() => Promise.resolve(writerS3.destroy()));
    const writer = {
      store: new S3ObjectStore({ bucket: s3.bucket, client: writerS3 }),
      meta: new DynamoMetaStore({ table, client: dynamo }),
    };
    const h = makeHarness(writer, passConfig);
    const topicConfig = { "segment.ms": 1, "retention.bytes": 1 };
    await h.call("POST", "/v1/topics", { name: "rolled", partitions: 1, config: topicConfig });
    await h.call("POST", "/v1/topics/rolled/records", { records: [{ value: 1 }] });
    await h.call("POST", "/v1/topics/rolled/records", { records: [{ value: 2 }] });
    // A first pass seals those two chunks, leaving them to a done roll intent.
    const first = await h.log.runMaintenance({ topic: "rolled", now: () => Date.now() + 1_000 });
    expect(first).toMatchObject({ segmentsRolled: 1, chunksReplaced: 2 });
    // Two more chunks: enough bytes after the sealed segment for retention.bytes to retire it.
    await h.call("POST", "/v1/topics/rolled/records", { records: [{ value: 3 }] });
    await h.call("POST", "/v1/topics/rolled/records", { records: [{ value: 4 }] });
    const rolled = await h.log.topics.get("rolled");
    const chunks = (await writer.meta.listEntries(rolled.id, 0, 0, 10)).filter(
      (e) => e.kind === "chunk",
    );
    expect(chunks).toHaveLength(2);
    // A roller that died after uploading its segment: its intent is still pending.
    const deadRoll = ulid();
    const deadUpload = segmentKey("rolled", rolled.id, 0, chunks[0]!.baseOffset, deadRoll);
    await writer.store.put(deadUpload, new Uint8Array(1));
    expect(
      await writer.meta.beginIntent(rolled, 0, {
        kind: "roll",
        baseOffset: chunks[0]!.baseOffset,
        id: deadRoll,
        objectKeys: chunks.map((c) => c.objectKey),
        sealedKey: deadUpload,
        createdAt: Date.now(),
        doneAt: null,
      }),
    ).toBe(true);
    // An upload whose writer never committed it.
    await writer.store.put(
      chunkKey("rolled", rolled.id, 0, "01ORPHAN0000000000000000000"),
      new Uint8Array(1),
    );
    await h.call("POST", "/v1/topics", { name: "gone", partitions: 1 });
    await h.call("POST", "/v1/topics/gone/records", { records: [{ value: 5 }] });
    await h.call("DELETE", "/v1/topics/gone");
    await h.log.close();

    const s3Client = makeS3Client(s3.endpoint);
    cleanup.push(() => Promise.resolve(s3Client.destroy()));
    const dynamoClient = new DynamoDBClient({});
    cleanup.push(() => Promise.resolve(dynamoClient.destroy()));
    // Every operation either client sends, by the low-level command's name (the document
    // client's GetCommand reaches the client as GetItemCommand), and each transaction's items.
    const sent: string[] = [];
    const needed = new Set<string>();
    const recording = { step: "initialize", name: "recordCommands" } as const;
    const note = (command = "?", input: unknown) => {
      sent.push(command);
      const action = iamAction[command];
      if (typeof action === "string") needed.add(action);
      if (command !== "TransactWriteItemsCommand") return;
      for (const item of (input as { TransactItems: object[] }).TransactItems) {
        for (const kind of Object.keys(item)) {
          expect(kind in transactItemActions, `transaction item ${kind}`).toBe(true);
          needed.add(transactItemActions[kind]!);
        }
      }
    };
    s3Client.middlewareStack.add(
      (next, context) => (args) => {
        note(context.commandName, args.input);
        return next(args);
      },
      recording,
    );
    dynamoClient.middlewareStack.add(
      (next, context) => (args) => {
        note(context.commandName, args.input);
        return next(args);
      },
      recording,
    );

    // The maintenance function's path: a SluiceLog over the cloud adapters, its whole pass,
    // with a clock past every grace period and timeout.
    const log = new SluiceLog({
      store: new S3ObjectStore({ bucket: s3.bucket, client: s3Client }),
      meta: new DynamoMetaStore({ table, client: dynamoClient }),
      config: passConfig,
      logger,
    });
    const later = Date.now() + 10 * 60_000;
    const report = await log.runMaintenance({ now: () => later });
    expect(report).toEqual({
      // The live partition and the dead topic's.
      partitions: 2,
      // The retired segment and the rolled chunks (their done intents name them), the new
      // segment, the orphan, and the deleted topic's chunk. The first two chunks and the dead
      // roller's upload went earlier in the pass.
      objectsScanned: 6,
      orphansDeleted: 1,
      deletedTopicObjectsDeleted: 1,
      segmentsRolled: 1,
      chunksReplaced: 2,
      segmentsRetired: 1,
      intentsAborted: 1,
      // The first two chunks, a grace period after the first pass sealed them.
      garbageObjectsDeleted: 2,
      // The dead topic's head and index entry, then its tombstone.
      deletedTopicItemsDeleted: 3,
      rollsFailed: 0,
    });

    const unknown = [...new Set(sent)].filter((c) => !(c in iamAction));
    expect(unknown).toEqual([]);
    expect([...needed].sort()).toEqual(
      [...maintenanceObjectActions, ...maintenanceBucketActions, ...maintenanceTableActions].sort(),
    );
  });
});
