import { storeKinds } from "../support/stores.js";
import { apiSuite } from "./api.case.js";

for (const [kind, makeStores] of Object.entries(storeKinds)) apiSuite(kind, makeStores);
