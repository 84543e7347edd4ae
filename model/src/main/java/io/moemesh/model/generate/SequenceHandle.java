package io.moemesh.model.generate;

/** A submitted sequence's {@link StepScheduler.Handle}: what it asks for is applied at the next step boundary. */
record SequenceHandle(SequenceState s) implements StepScheduler.Handle {
    @Override
    public void cancel() {
        s.cancel();
    }

    @Override
    public void stop() {
        s.stop();
    }

    @Override
    public long sequenceId() {
        return s.id;
    }
}
