import Foundation
import HeraldCore
import HeraldStore
import HeraldWorkflow

/// Everything that follows from a batch of provider outcomes, decided by ``OutcomeReducer`` and written by
/// ``RunBatch/apply(_:)`` in the recording transaction. A value: nothing in it has happened yet.
struct OutcomeDecision: Sendable {
    /// The deliveries with their new state (status, attempts, outcome, error, next attempt).
    var deliveries: [DeliveryRecord] = []
    /// Devices whose tokens the provider called invalid (the guard allowed it).
    var removeDevices: [String] = []
    /// Raw tokens of raw sends to remove from the registry, by provider.
    var removeTokens: [String: [String]] = [:]
    /// Devices reached: their last-success stamp moves.
    var reachedDevices: [String] = []
    /// Chat credentials (subscriber, integration) whose webhook the provider called gone.
    var deactivateChannels: [ChannelRef] = []
    /// Email addresses and phone numbers a provider refused for good: they join the suppression list.
    var suppressions: [Suppression] = []
    /// `deliver` jobs of the deliveries to try again.
    var retries: [NewJob] = []
    /// The activity trail of everything above.
    var details: [ExecutionDetail] = []
    /// Messages whose deliveries are all final.
    var messages: [MessageUpdate] = []
    /// Email/SMS messages that go again through the next integration of their channel.
    var failovers: [Failover] = []
    /// Steps whose deliveries are all final: their result goes into the run.
    var finishedSteps: [FinishedStep] = []
    /// What happened, for metrics and status webhooks.
    var events: [DomainEvent] = []

    struct ChannelRef: Sendable, Equatable {
        var subscriberId: String
        var integrationId: String
    }

    struct MessageUpdate: Sendable, Equatable {
        var id: String
        var status: MessageStatus
        var errorId: String?
        var errorText: String?
    }

    struct Failover: Sendable {
        /// The message that could not be delivered.
        var message: MessageRecord
        /// The integration it goes to now.
        var integration: Integration
    }

    struct FinishedStep: Sendable, Equatable {
        var step: StepKey
        var result: StepState
    }
}
