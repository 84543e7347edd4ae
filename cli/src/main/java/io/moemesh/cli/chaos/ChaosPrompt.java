package io.moemesh.cli.chaos;

/**
 * A prompt of the chaos workload and the greedy tokens the single-process reference engine generates for it: what
 * every request through the mesh must return, whatever was killed meanwhile.
 */
public record ChaosPrompt(String text, int[] referenceIds) {
}
