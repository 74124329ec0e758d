import { App } from "aws-cdk-lib";
import { SluiceStack } from "./sluice-stack.js";

/**
 * `npx cdk synth` / `npx cdk deploy` from the repository root (cdk.json runs this file).
 * `-c sluice:publicUrl=true` opens the Function URL to unauthenticated callers: demos only.
 */
const app = new App();
const publicUrl = app.node.tryGetContext("sluice:publicUrl") as unknown;

new SluiceStack(app, "Sluice", {
  description: "Sluice: a Kafka-style event log on S3 and DynamoDB",
  publicUrl: publicUrl === true || publicUrl === "true",
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
});
