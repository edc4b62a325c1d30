from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, RadioField, StringField, SubmitField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, ValidationError

from app.services.payments import METHODS


class PaymentForm(FlaskForm):
    method = RadioField(
        "Payment method",
        choices=[SelectChoice(value, label) for value, label in METHODS.items()],
        default="card",
        validators=[DataRequired()],
    )
    card_number = StringField(
        "Card number",
        validators=[Length(max=32)],
        render_kw={"inputmode": "numeric", "autocomplete": "cc-number", "placeholder": "4242 4242 4242 4242"},
    )
    submit = SubmitField("Pay now")

    def validate_card_number(self, field):
        if self.method.data == "card" and not (field.data or "").strip():
            raise ValidationError("Enter your card number.")


class WalletForm(FlaskForm):
    approve = SubmitField("Approve payment")
    decline = SubmitField("Decline")

    def validate(self, extra_validators=None):
        """Valid only with exactly one of the two buttons: no answer is not a decline."""
        if not super().validate(extra_validators):
            return False
        if self.approve.data == self.decline.data:
            self.form_errors.append("Choose Approve payment or Decline.")
            return False
        return True


class ReleaseForm(FlaskForm):
    submit = SubmitField("Release seats")


class WaitlistForm(FlaskForm):
    """Join an event's waiting list; the waitlist service checks the values."""

    party_size = StringField(
        _l("Party size"), default="1", validators=[Length(max=8)], render_kw={"inputmode": "numeric"}
    )
    category = StringField(_l("Price category"), default="any", validators=[Length(max=16)])
    together = BooleanField(_l("Seats side by side"))
    submit = SubmitField(_l("Join the waiting list"))


class ButtonForm(FlaskForm):
    """A button that changes something (its CSRF token is the whole form)."""
