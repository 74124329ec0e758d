import { App } from "aws-cdk-lib";
import { SluiceStack } from "./sluice-stack.js";

/**
 * `npx cdk synth` / `npx cdk deploy` from the repository root (cdk.json runs this file).
 *
 * The Function URL is public by default: Sluice authenticates every request itself with API
 * keys and tokens, which browsers and mobile apps can hold and AWS credentials they cannot.
 * `-c sluice:publicUrl=false` puts AWS IAM in front as well (SigV4-signed callers only); SigV4
 * takes the Authorization header Sluice reads, so that suits callers that sign in the query
 * string.
 */
const app = new App();
const publicUrl = app.node.tryGetContext("sluice:publicUrl") as unknown;

new SluiceStack(app, "Sluice", {
  description: "Sluice: a Kafka-style event log on S3 and DynamoDB",
  publicUrl: !(publicUrl === false || publicUrl === "false"),
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
});
