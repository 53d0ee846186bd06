// Test-time IAM evaluator: decides a batch of requests with npm @cloud-copilot/iam-simulate.
//
// That package is AGPL-3.0: it is only ever run here, as a separate node process started by the
// tests (tests/iam/evaluator.py), and is never bundled into or shipped with the app.
//
// stdin, one JSON document:
//   {"cases": [{"id": "a-own",
//               "identityPolicies": [<IAM policy document>, ...],
//               "resourcePolicy": <IAM policy document>,            (optional, e.g. a trust policy)
//               "request": {"action": "sagemaker:InvokeEndpoint",
//                           "resource": "<concrete ARN>",
//                           "resourceAccount": "111122223333",      (optional, default: from the ARN)
//                           "principal": "<ARN of the calling role or role session>",
//                           "contextKeys": {"sagemaker:TargetModel": "company_a/m.tar.gz", ...}}}]}
// stdout: {"results": [{"id": ..., "decision": "Allowed"|"ImplicitlyDenied"|"ExplicitlyDenied",
//                       "explain": {...}}]}, exit 0.
// Malformed input or a request the library refuses: a message on stderr naming the case, exit 1.
//
// Guards against the library silently answering a different question than AWS would:
//   * every policy must say "Version": "2012-10-17": the library substitutes ${...} policy
//     variables whatever the version, AWS treats them as literal text in older or missing versions;
//   * the principal must be an ARN with an account, or a service principal (x.amazonaws.com) with
//     no identity policies (the library accepts any string and then quietly treats it as an
//     unknown principal);
//   * the resource must be one concrete ARN (a "*" makes the library run a wildcard analysis,
//     which is not what one InvokeEndpoint request is).
// Context keys that do not exist for the action (a typo, or sagemaker:TargetModel on
// DescribeEndpoint) are dropped by the library, as AWS would never send them; they are reported
// in explain.ignoredContextKeys so a test can insist there are none.

import { runSimulation } from '@cloud-copilot/iam-simulate'

const POLICY_VERSION = '2012-10-17'
const PRINCIPAL_ARN = /^arn:aws[a-z-]*:(iam|sts)::\d{12}:.+/
// An AWS service acting on its own behalf (cloudwatch.amazonaws.com publishing an alarm): it has no
// identity policies, so only the resource policy can allow it.
const SERVICE_PRINCIPAL = /^[a-z0-9-]+(\.[a-z0-9-]+)*\.amazonaws\.com$/
const ARN = /^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:(\d{12})?:.+/

class InputError extends Error {}

function fail(message) {
  throw new InputError(message)
}

function isObject(value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function checkPolicy(where, policy) {
  if (!isObject(policy)) fail(`${where}: a policy document must be a JSON object`)
  if (policy.Version !== POLICY_VERSION) {
    fail(
      `${where}: "Version" must be "${POLICY_VERSION}" (got ${JSON.stringify(policy.Version)}); ` +
        'without it AWS treats ${...} policy variables as literal text and this evaluator would not'
    )
  }
  return policy
}

function checkContext(where, contextKeys) {
  if (contextKeys === undefined) return {}
  if (!isObject(contextKeys)) fail(`${where}: must be an object of context key -> string or string[]`)
  for (const [key, value] of Object.entries(contextKeys)) {
    const ok =
      typeof value === 'string' || (Array.isArray(value) && value.every((v) => typeof v === 'string'))
    if (!ok) fail(`${where}["${key}"]: must be a string or an array of strings`)
  }
  return contextKeys
}

function parseCase(raw, index, seen) {
  const where = `cases[${index}]`
  if (!isObject(raw)) fail(`${where}: must be an object`)
  const { id, identityPolicies, resourcePolicy, request } = raw
  if (typeof id !== 'string' || id === '') fail(`${where}.id: must be a non-empty string`)
  if (seen.has(id)) fail(`${where}.id: duplicate id "${id}"`)
  seen.add(id)
  const named = `case "${id}"`
  if (!Array.isArray(identityPolicies)) fail(`${named}: identityPolicies must be an array`)
  const policies = identityPolicies.map((policy, i) => ({
    name: `identityPolicies[${i}]`,
    policy: checkPolicy(`${named} identityPolicies[${i}]`, policy)
  }))
  if (!isObject(request)) fail(`${named}: request must be an object`)
  const { action, resource, principal, contextKeys, resourceAccount } = request
  if (typeof action !== 'string' || !/^[a-z0-9-]+:[A-Za-z0-9]+$/.test(action)) {
    fail(`${named}: request.action must look like "service:Action" (got ${JSON.stringify(action)})`)
  }
  if (typeof resource !== 'string' || !ARN.test(resource) || resource.includes('*')) {
    fail(`${named}: request.resource must be one concrete ARN (got ${JSON.stringify(resource)})`)
  }
  const isService = typeof principal === 'string' && SERVICE_PRINCIPAL.test(principal)
  if (isService && identityPolicies.length > 0) {
    fail(`${named}: a service principal has no identity policies; give only resourcePolicy`)
  }
  if (typeof principal !== 'string' || !(PRINCIPAL_ARN.test(principal) || isService)) {
    fail(
      `${named}: request.principal must be an IAM or STS ARN with an account, or a service ` +
        `principal such as cloudwatch.amazonaws.com ` +
        `(got ${JSON.stringify(principal)})`
    )
  }
  const account = resourceAccount ?? resource.split(':')[4]
  if (typeof account !== 'string' || !/^\d{12}$/.test(account)) {
    fail(`${named}: the resource ARN has no account; give request.resourceAccount`)
  }
  return {
    id,
    simulation: {
      identityPolicies: policies,
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      ...(resourcePolicy === undefined || resourcePolicy === null
        ? {}
        : { resourcePolicy: checkPolicy(`${named} resourcePolicy`, resourcePolicy) }),
      request: {
        principal,
        action,
        resource: { resource, accountId: account },
        contextVariables: checkContext(`${named} request.contextKeys`, contextKeys)
      }
    }
  }
}

function compactStatement(analysis) {
  const e = analysis.explain
  const conditions = (e.conditions ?? []).map((c) => ({
    operator: c.operator,
    key: c.conditionKeyValue,
    requestValue: c.resolvedConditionKeyValue ?? null,
    matches: c.matches,
    ...(c.failedBecauseMissing ? { failedBecauseMissing: true } : {}),
    ...(c.matchedBecauseMissing ? { matchedBecauseMissing: true } : {}),
    values: [c.values].flat().map((v) => ({
      value: v.value,
      ...(v.resolvedValue !== undefined && v.resolvedValue !== v.value ? { resolved: v.resolvedValue } : {}),
      matches: v.matches,
      ...(v.errors?.length ? { errors: v.errors } : {})
    }))
  }))
  return {
    statement: `${analysis.policyId}#${e.identifier}`,
    effect: e.effect,
    matches: e.matches,
    action: e.actionMatch,
    resource: e.resourceMatch,
    principal: e.principalMatch,
    condition: e.conditionMatch,
    ...(conditions.length ? { conditions } : {})
  }
}

function compactAnalysis(analysis) {
  if (!analysis || analysis.result === 'NotApplicable') return undefined
  return {
    result: analysis.result,
    deny: analysis.denyStatements.map(compactStatement),
    allow: analysis.allowStatements.map(compactStatement),
    unmatched: analysis.unmatchedStatements.map(compactStatement)
  }
}

function explain(result) {
  const analysis = result.analysis
  const identity = compactAnalysis(analysis.identityAnalysis)
  const resource = compactAnalysis(analysis.resourceAnalysis)
  // The statements that decided: every matching Deny when denied explicitly, the matching Allows
  // when allowed, none when nothing allowed (the statements that failed are under "unmatched").
  const deciding = [identity, resource]
    .filter(Boolean)
    .flatMap((part) =>
      analysis.result === 'ExplicitlyDenied' ? part.deny : analysis.result === 'Allowed' ? part.allow : []
    )
    .map((s) => s.statement)
  return {
    decidedBy: deciding,
    ignoredContextKeys: result.ignoredContextKeys ?? [],
    sameAccount: analysis.sameAccount,
    ...(analysis.blockedBy?.length ? { blockedBy: analysis.blockedBy } : {}),
    ...(identity ? { identity } : {}),
    ...(resource ? { resource } : {})
  }
}

async function readStdin() {
  const chunks = []
  for await (const chunk of process.stdin) chunks.push(chunk)
  return Buffer.concat(chunks).toString('utf8')
}

async function main() {
  let document
  try {
    document = JSON.parse(await readStdin())
  } catch (error) {
    fail(`stdin is not one JSON document: ${error.message}`)
  }
  if (!isObject(document) || !Array.isArray(document.cases)) fail('stdin must be {"cases": [...]}')
  const seen = new Set()
  const cases = document.cases.map((raw, index) => parseCase(raw, index, seen))
  const results = []
  for (const { id, simulation } of cases) {
    const response = await runSimulation(simulation, { simulationMode: 'Strict' })
    if (response.resultType !== 'single') {
      const detail = response.resultType === 'error' ? JSON.stringify(response.errors) : response.resultType
      fail(`case "${id}": iam-simulate refused the request: ${detail}`)
    }
    results.push({ id, decision: response.overallResult, explain: explain(response.result) })
  }
  process.stdout.write(JSON.stringify({ results }) + '\n')
}

main().catch((error) => {
  const message = error instanceof InputError ? error.message : `iam-simulate failed: ${error.stack ?? error}`
  process.stderr.write(`simulate.mjs: ${message}\n`)
  process.exitCode = 1
})
