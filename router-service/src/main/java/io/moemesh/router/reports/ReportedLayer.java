package io.moemesh.router.reports;

/**
 * One layer of a reported token's route, as received (router.v1 LayerRoute): not yet validated.
 *
 * @param layer   decoder layer index
 * @param experts routed experts, best first
 * @param weights gate weights parallel to {@code experts}, or empty when not known
 */
public record ReportedLayer(long layer, long[] experts, float[] weights) {
}
