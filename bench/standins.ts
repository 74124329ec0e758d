/**
 * The S3 and DynamoDB stand-ins the tests use (s3rver and DynamoDB Local on 127.0.0.1), started
 * once per bench run, or MinIO / AWS when AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL_DYNAMODB say so.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { ensureTable } from "../src/meta/dynamodb.js";
import { dynamoEndpoint } from "../test/support/standins/dynamodb.js";
import { s3Endpoint } from "../test/support/standins/s3.js";

export interface Standins {
  bucket: string;
  table: string;
  s3Endpoint: string;
  dynamoEndpoint: string;
  /** What a child process (Sluice, the Lambda bundle) needs to reach them. */
  env: Record<string, string>;
  stop: () => Promise<void>;
}

export async function startStandins(): Promise<Standins> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  process.env.AWS_REGION ??= "us-east-1";
  const external = Boolean(process.env.AWS_ENDPOINT_URL_S3);
  const [s3, dynamo] = await Promise.all([s3Endpoint(), dynamoEndpoint()]);
  const env: Record<string, string> = {
    AWS_ENDPOINT_URL_S3: s3.endpoint,
    AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
    AWS_REGION: process.env.AWS_REGION,
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
  };
  if (!external) {
    // s3rver checks signatures against its one fixed account; DynamoDB Local takes any.
    env.AWS_ACCESS_KEY_ID = "S3RVER";
    env.AWS_SECRET_ACCESS_KEY = "S3RVER";
  }
  // In-process stores (cost counters, rolls, raw PUT/GET) read the same variables.
  Object.assign(process.env, env);
  const table = `sluice-bench-${Date.now()}`;
  const client = new DynamoDBClient({});
  try {
    await ensureTable(client, table);
  } finally {
    client.destroy();
  }
  return {
    bucket: s3.bucket,
    table,
    s3Endpoint: s3.endpoint,
    dynamoEndpoint: dynamo.endpoint,
    env,
    stop: async () => {
      await Promise.allSettled([s3.stop(), dynamo.stop()]);
    },
  };
}
