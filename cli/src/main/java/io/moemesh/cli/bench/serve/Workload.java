package io.moemesh.cli.bench.serve;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * The requests of a run and when each is sent.
 *
 * <p>Arrivals: an Azure trace replays its TIMESTAMPs (divided by {@code --speedup}) unless {@code --request-rate} or
 * {@code --max-concurrency} is given, in which case it supplies lengths only; otherwise Poisson at
 * {@code --request-rate} (vLLM's default rate is infinity: everything at once, paced by {@code --max-concurrency}).
 */
public record Workload(String description, List<BenchPrompt> prompts, double[] arrivalSeconds) {

    /** How arrivals are paced: a finite rate (requests/s) or infinity; replay a trace unless paced otherwise. */
    public record Pacing(double requestRate, boolean rateGiven, boolean concurrencyGiven, double speedup, long seed) {
        boolean replayTrace() {
            return !rateGiven && !concurrencyGiven;
        }
    }

    public int clipped() {
        return (int) prompts.stream().filter(BenchPrompt::clipped).count();
    }

    public static Workload azure(Path file, int numPrompts, PromptMaker maker, int maxContext, Pacing pacing) {
        List<AzureTrace.Row> rows = AzureTrace.read(file, numPrompts);
        SplittableRandom random = new SplittableRandom(pacing.seed());
        List<BenchPrompt> prompts = new ArrayList<>(rows.size());
        List<Double> recorded = new ArrayList<>(rows.size());
        for (AzureTrace.Row row : rows) {
            prompts.add(maker.synthetic(row.contextTokens(), row.generatedTokens(), maxContext, random.split()));
            recorded.add(row.arrivalSeconds());
        }
        double[] arrivals = pacing.replayTrace() ? ArrivalSchedule.replay(recorded, pacing.speedup())
                : paced(prompts.size(), pacing);
        String how = pacing.replayTrace() ? "trace arrivals at " + pacing.speedup() + "x speed" : "lengths only";
        return new Workload("Azure trace " + file.getFileName() + " (first " + rows.size() + " rows, " + how + ")",
                prompts, arrivals);
    }

    public static Workload shareGpt(Path file, int numPrompts, int outputTokens, PromptMaker maker, int maxContext,
                                    Pacing pacing) {
        List<String> texts = ShareGptPrompts.sample(ShareGptPrompts.read(file), numPrompts, pacing.seed());
        List<BenchPrompt> prompts = new ArrayList<>(texts.size());
        for (String text : texts) {
            prompts.add(maker.text(text, outputTokens, maxContext));
        }
        return new Workload("ShareGPT " + file.getFileName() + " (" + numPrompts + " prompts, " + outputTokens
                + " output tokens)", prompts, paced(numPrompts, pacing));
    }

    public static Workload random(int numPrompts, int inputTokens, int outputTokens, PromptMaker maker,
                                  int maxContext, Pacing pacing) {
        SplittableRandom random = new SplittableRandom(pacing.seed());
        List<BenchPrompt> prompts = new ArrayList<>(numPrompts);
        for (int i = 0; i < numPrompts; i++) {
            prompts.add(maker.synthetic(inputTokens, outputTokens, maxContext, random.split()));
        }
        return new Workload("random (" + numPrompts + " prompts, " + inputTokens + " input, " + outputTokens
                + " output tokens)", prompts, paced(numPrompts, pacing));
    }

    private static double[] paced(int n, Pacing pacing) {
        // A different stream than the prompts' so changing the rate does not change the prompts.
        return ArrivalSchedule.poisson(n, pacing.requestRate(), pacing.seed() ^ 0x5DEECE66DL);
    }
}
