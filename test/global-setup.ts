import { dynamoEndpoint } from "./support/standins/dynamodb.js";
import { s3Endpoint } from "./support/standins/s3.js";

/**
 * Starts each cloud stand-in once for the whole run — s3rver and DynamoDB Local on 127.0.0.1 —
 * unless AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL_DYNAMODB already point at MinIO, DynamoDB Local
 * or AWS. Test workers inherit the variables, so the SDK's own configuration finds them.
 */
export default async function setup(): Promise<() => Promise<void>> {
  const stops: (() => Promise<void>)[] = [];
  process.env.AWS_REGION ??= "us-east-1";
  // The SDK's notice that it will need Node 22 from 2027 would repeat in every worker's output.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  try {
    if (!process.env.AWS_ENDPOINT_URL_S3) {
      const s3 = await s3Endpoint();
      stops.push(s3.stop);
      process.env.AWS_ENDPOINT_URL_S3 = s3.endpoint;
      // s3rver checks signatures against its one fixed account.
      process.env.AWS_ACCESS_KEY_ID = "S3RVER";
      process.env.AWS_SECRET_ACCESS_KEY = "S3RVER";
    }
    if (!process.env.AWS_ENDPOINT_URL_DYNAMODB) {
      const dynamo = await dynamoEndpoint();
      stops.push(dynamo.stop);
      process.env.AWS_ENDPOINT_URL_DYNAMODB = dynamo.endpoint;
    }
  } catch (err) {
    await Promise.all(stops.map((stop) => stop()));
    throw err;
  }
  return async () => {
    await Promise.all(stops.map((stop) => stop()));
  };
}
