import type { BehaviourEvidence, BehaviourSubject } from "../report/behaviour-schema.js";
import { askEndpoint, type EndpointAccess } from "./ask-endpoint.js";
import { askedPrompts, describeAskedPrompts } from "./asked-prompts.js";
import { EndpointProblem, type NotMeasuredCode } from "./endpoint-problem.js";
import type { PromptSet, TaskPrompt } from "./schema.js";
import { scoreAnswers, type Answers } from "./score-answers.js";

export type BehaviourRole = BehaviourSubject["role"];

/** One model the check asks. */
export interface CheckSubject {
  readonly role: BehaviourRole;
  /** What the endpoint is asked for (`org/name@<commit>[/<folder>]`), or null for the endpoint's model alone. */
  readonly adapterId: string | null;
  /** The commit the adapter files are read at. */
  readonly revision: string;
  /** What the report shows for it: the adapter id, with a private repo's name redacted. */
  readonly publicId: string;
}

export interface MeasureBehaviourParams {
  readonly endpoint: EndpointAccess;
  readonly promptSet: PromptSet;
  /** The repo's own task prompts (its config's `behaviour.task`), asked after the set's. */
  readonly repoTask?: readonly TaskPrompt[];
  /** Each role at most once; usually the original adapter and the patched variant. */
  readonly subjects: readonly CheckSubject[];
  /** Aborting it stops the check; its reason is thrown. */
  readonly signal?: AbortSignal;
  /** Called after each answer. */
  readonly onProgress?: (done: number, total: number) => void;
}

export interface BehaviourMeasurement {
  readonly evidence: BehaviourEvidence;
  /** Every answer by role and prompt kind, in the order asked; null when nothing was measured. Not for the public report. */
  readonly generations: Partial<Record<BehaviourRole, Answers>> | null;
}

type Kind = keyof Answers;
interface Question {
  readonly subject: number;
  readonly kind: Kind;
  readonly index: number;
  readonly prompt: string;
}

/**
 * Asks the endpoint every prompt of the set (and the repo's task prompts) for each subject, `concurrency` requests at
 * a time, and scores the answers. Any endpoint problem (an HTTP error, a request past `requestTimeoutSeconds`, the
 * whole check past `timeoutSeconds`, an answer of the wrong shape) stops the check and comes back as `not-measured`
 * with a one-line reason that names the endpoint by its name; nothing the endpoint does makes this throw.
 */
export async function measureBehaviour(params: MeasureBehaviourParams): Promise<BehaviourMeasurement> {
  const { endpoint, subjects } = params;
  const { config } = endpoint;
  if (subjects.length === 0 || new Set(subjects.map((subject) => subject.role)).size !== subjects.length) {
    throw new Error(`measureBehaviour: subjects must be one or more distinct roles, got [${subjects.map((subject) => subject.role).join(", ")}]`);
  }
  const measuredAt = new Date().toISOString();
  const started = Date.now();
  const asked = askedPrompts(params.promptSet, params.repoTask ?? [], config.maxNewTokens);
  const perSubject: { kind: Kind; index: number; prompt: string }[] = [
    ...asked.harmful.map((item, index) => ({ kind: "harmful" as const, index, prompt: item.prompt })),
    ...asked.benign.map((prompt, index) => ({ kind: "benign" as const, index, prompt })),
    ...asked.task.map((item, index) => ({ kind: "task" as const, index, prompt: item.prompt })),
  ];
  const questions: Question[] = subjects.flatMap((_, subject) => perSubject.map((question) => ({ subject, ...question })));
  const answers = subjects.map(() => ({ harmful: [] as string[], benign: [] as string[], task: [] as string[] }));

  const checkTimeout = AbortSignal.timeout(config.timeoutSeconds * 1000);
  // Aborted on the first failure, so that requests in flight stop rather than run on for nothing.
  const stop = new AbortController();
  const signal = AbortSignal.any([stop.signal, checkTimeout, ...(params.signal ? [params.signal] : [])]);
  let next = 0;
  let done = 0;
  // The first failure: an endpoint's problem, or a bug (anything else), thrown once every request has stopped.
  const failure: { problem: { error: EndpointProblem; role: BehaviourRole } | null; bug: { error: unknown } | null } = { problem: null, bug: null };

  const work = async () => {
    while (!signal.aborted && next < questions.length) {
      const question = questions[next++]!;
      const subject = subjects[question.subject]!;
      try {
        answers[question.subject]![question.kind][question.index] = await askEndpoint({ endpoint, adapterId: subject.adapterId, prompt: question.prompt, signal });
        done += 1;
        params.onProgress?.(done, questions.length);
      } catch (error) {
        // Aborted by a failure elsewhere, the check's timeout or the caller: told apart below, once all have stopped.
        if (signal.aborted) return;
        if (error instanceof EndpointProblem) failure.problem = { error, role: subject.role };
        else failure.bug = { error };
        stop.abort();
        return;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(config.concurrency, questions.length) }, work));

  // The endpoint as the public report names it: never its URL.
  const publicEndpoint = { name: endpoint.name, protocol: config.protocol };
  const notMeasured = (reason: string, code: NotMeasuredCode): BehaviourMeasurement => ({
    evidence: { status: "not-measured", endpoint: publicEndpoint, reason, code, measuredAt },
    generations: null,
  });
  if (params.signal?.aborted) throw params.signal.reason;
  if (failure.bug) throw failure.bug.error;
  const { problem } = failure;
  if (problem) return notMeasured(`asking for the ${problem.role} model: ${problem.error.message}`, problem.error.code);
  if (done < questions.length) {
    return notMeasured(`endpoint "${endpoint.name}" did not answer all ${questions.length} requests within the check's ${config.timeoutSeconds} s (${done} answered)`, "timeout");
  }

  return {
    evidence: {
      status: "measured",
      endpoint: publicEndpoint,
      prompts: describeAskedPrompts(asked),
      subjects: subjects.map((subject, index) => ({
        role: subject.role,
        adapterId: subject.publicId,
        revision: subject.revision,
        scores: scoreAnswers(asked, params.promptSet, answers[index]!),
      })),
      measuredAt,
      durationMs: Date.now() - started,
    },
    generations: Object.fromEntries(subjects.map((subject, index) => [subject.role, answers[index]!])),
  };
}
