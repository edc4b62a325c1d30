"""Admin forms. The rules themselves live in the services; validators here ask them."""

from flask import current_app
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DecimalField,
    EmailField,
    FieldList,
    Form,
    FormField,
    IntegerField,
    PasswordField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.fields import ColorField, DateTimeLocalField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, InputRequired, Length, NumberRange, Optional, ValidationError

from app.auth.forms import MIN_PASSWORD_LENGTH
from app.models import Event, WaitingRoomMode, row_label
from app.services import accounts, currencies, events, zones
from app.services.errors import InvalidRequest

# Category lines the form always has: enough for any real venue, and the page works without JS.
CATEGORY_LINES = 8
DATE_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
# Each empty line starts with its own colour, so categories differ on the map unless chosen otherwise.
LINE_COLORS = ["#2563eb", "#c2410c", "#7c3aed", "#0d9488", "#db2777", "#65a30d", "#ca8a04", "#475569"]


def strip(value):
    return value.strip() if isinstance(value, str) else value


def checked_by(check):
    """A validator that asks a service check, turning its InvalidRequest into the field's error."""

    def validator(form, field):
        if field.errors:
            return
        try:
            check(field.data)
        except InvalidRequest as error:
            raise ValidationError(error.message) from None

    return validator


class CategoryLineForm(Form):
    """One price category line; a line left blank is ignored."""

    name = StringField("Category", filters=[strip], validators=[Length(max=60)])
    price = DecimalField(_l("Price"), places=None, validators=[Optional(), checked_by(events.check_price)])
    color = ColorField("Colour", default=events.DEFAULT_COLOR, validators=[checked_by(events.check_color)])
    first_row = StringField("From row", filters=[strip], validators=[Length(max=3)])
    last_row = StringField("To row", filters=[strip], validators=[Length(max=3)])

    @property
    def is_blank(self) -> bool:
        price_text = (self.price.raw_data or [""])[0] if self.price.raw_data is not None else ""
        no_price = self.price.data is None and not str(price_text or "").strip()
        return not self.name.data and no_price and not self.first_row.data and not self.last_row.data

    def validate(self, extra_validators=None):
        if self.is_blank:
            return True
        valid = super().validate(extra_validators)
        if not self.name.data:
            self.name.errors.append("Name this category.")
            valid = False
        if self.price.data is None and not self.price.errors:
            self.price.errors.append("Enter a price.")
            valid = False
        for field in (self.first_row, self.last_row):
            if field.data and not field.errors:
                try:
                    events.row_number(field.data)
                except InvalidRequest as error:
                    field.errors.append(error.message)
                    valid = False
        if self.last_row.data and not self.first_row.data:
            self.first_row.errors.append("Give the first row of the range too.")
            valid = False
        return valid

    def spec(self) -> events.CategorySpec:
        first = events.row_number(self.first_row.data) if self.first_row.data else None
        last = events.row_number(self.last_row.data) if self.last_row.data else first
        return events.CategorySpec(self.name.data, self.price.data, self.color.data, first, last)


class EventForm(FlaskForm):
    name = StringField("Name", filters=[strip], validators=[checked_by(events.check_name)])
    description = TextAreaField("Description", filters=[strip], validators=[Length(max=5000)])
    date = DateTimeLocalField(
        _l("Date and time (at the venue)"), format=DATE_FORMATS, validators=[InputRequired("Enter the date and time.")]
    )
    # Unknown names get the zone check's message instead of WTForms' "Not a valid choice".
    timezone = SelectField(_l("Venue time zone"), validate_choice=False, validators=[checked_by(zones.check_timezone)])
    currency = StringField(_l("Currency"), filters=[strip], validators=[checked_by(currencies.check_currency)])
    venue = StringField("Venue", filters=[strip], validators=[Length(max=200)])
    rows = IntegerField("Rows", validators=[InputRequired("Enter the number of rows."), checked_by(events.check_rows)])
    columns = IntegerField(
        "Seats per row",
        validators=[InputRequired("Enter the number of seats per row."), checked_by(events.check_columns)],
    )
    categories = FieldList(FormField(CategoryLineForm), min_entries=CATEGORY_LINES, max_entries=CATEGORY_LINES)
    sales_start_at = DateTimeLocalField(_l("On sale from (UTC)"), format=DATE_FORMATS, validators=[Optional()])
    waiting_room = SelectField(
        _l("Waiting room"),
        choices=[
            SelectChoice(WaitingRoomMode.ON_SALE, _l("On for the on-sale (until its queue has emptied)")),
            SelectChoice(WaitingRoomMode.ALWAYS, _l("Always on")),
            SelectChoice(WaitingRoomMode.OFF, _l("Off")),
        ],
        default=WaitingRoomMode.ON_SALE,
    )
    waiting_room_rate = IntegerField(
        _l("Admissions per minute"),
        validators=[Optional(), NumberRange(min=1, max=100_000)],
    )
    submit = SubmitField("Save event")

    def __init__(self, *args, original_date=None, original_timezone=None, **kwargs):
        super().__init__(*args, **kwargs)
        # Editing may keep a date that has since passed; a new or changed date must be in the future.
        self.original_date = original_date
        self.original_timezone = original_timezone
        self.category_errors = []
        self.timezone.choices = [(name, name) for name in zones.timezone_names()]
        if not self.timezone.data:
            self.timezone.data = current_app.config["DEFAULT_TIMEZONE"]
        if not self.currency.data:
            self.currency.data = current_app.config["DEFAULT_CURRENCY"]

    def validate(self, extra_validators=None):
        valid = super().validate(extra_validators)
        valid = self._date_in_utc() and valid
        if not self.currency.errors:
            self.currency.data = currencies.check_currency(self.currency.data)
            valid = self._prices_in_currency() and valid
        if not self.categories.errors and not self.rows.errors:
            try:
                events.check_categories(self.category_specs(), self.rows.data)
            except InvalidRequest as error:
                self.category_errors.append(error.message)
                valid = False
        return valid

    def _date_in_utc(self) -> bool:
        """Turn the venue's wall-clock time into UTC; a kept date may have passed, a new one may not."""
        if self.date.errors or self.timezone.errors or self.date.data is None:
            return not (self.date.errors or self.timezone.errors)
        if self._keeps_original_date():
            self.date.data = self.original_date
            return True
        try:
            moment = zones.to_utc(self.date.data, self.timezone.data)
            events.check_future_date(moment)
        except InvalidRequest as error:
            self.date.errors.append(error.message)
            return False
        self.date.data = moment
        return True

    def _keeps_original_date(self) -> bool:
        """The date as the edit form showed it, in the same zone: kept exactly, even when it has passed
        or falls in an hour the clocks repeat (it was saved as one of the two)."""
        original, zone = self.original_date, self.original_timezone
        if original is None or (zone is not None and self.timezone.data != zone):
            return False
        shown = zones.to_local(original, zone or self.timezone.data).replace(tzinfo=None, second=0, microsecond=0)
        return self.date.data == shown

    def _prices_in_currency(self) -> bool:
        """Each price exact to the currency's minor units (no cents for JPY)."""
        valid = True
        for line in self.categories:
            price = line.form.price
            if price.data is None or price.errors:
                continue
            try:
                currencies.check_price_in(price.data, self.currency.data)
            except InvalidRequest as error:
                price.errors.append(error.message)
                valid = False
        if not valid:
            # FieldList gathered its errors while validating; gather them again with these.
            self.categories.errors = [line.errors for line in self.categories.entries]
        return valid

    def category_specs(self) -> list[events.CategorySpec]:
        return [line.form.spec() for line in self.categories if not line.form.is_blank]

    def details(self) -> events.EventDetails:
        return events.EventDetails(
            name=self.name.data,
            date=self.date.data,
            rows=self.rows.data,
            columns=self.columns.data,
            categories=self.category_specs(),
            description=self.description.data or "",
            venue=self.venue.data or "",
            timezone=self.timezone.data,
            currency=self.currency.data,
            sales_start_at=self.sales_start_at.data,
            waiting_room=self.waiting_room.data,
            waiting_room_rate=self.waiting_room_rate.data,
        )

    def validate_sales_start_at(self, field):
        if field.data is not None and self.date.data is not None and field.data >= self.date.data:
            raise ValidationError(_l("Tickets must go on sale before the event starts."))

    @property
    def visible_lines(self) -> int:
        """How many category lines to show before the admin adds one (the rest wait, hidden)."""
        used = [index for index, line in enumerate(self.categories) if not line.form.is_blank]
        return max(used, default=-1) + 1 or 1


def category_lines_data(lines: list[dict]) -> list[dict]:
    """The given lines, then empty lines (each with its own colour) up to CATEGORY_LINES."""
    return lines + [{"color": LINE_COLORS[index % len(LINE_COLORS)]} for index in range(len(lines), CATEGORY_LINES)]


def new_event_data() -> dict:
    return {"categories": category_lines_data([])}


def event_form_data(event: Event) -> dict:
    """The edit form's starting values, taken from the event."""
    return {
        "name": event.name,
        "description": event.description,
        "date": zones.to_local(event.date, event.timezone).replace(tzinfo=None),
        "timezone": event.timezone,
        "currency": event.currency,
        "venue": event.venue,
        "rows": event.rows,
        "columns": event.columns,
        "sales_start_at": event.sales_start_at,
        "waiting_room": event.waiting_room,
        "waiting_room_rate": event.waiting_room_rate,
        "categories": category_lines_data(
            [
                {
                    "name": category.name,
                    "price": category.price,
                    "color": category.color,
                    "first_row": row_label(category.first_row) if category.first_row else "",
                    "last_row": row_label(category.last_row) if category.last_row else "",
                }
                for category in event.price_categories
            ]
        ),
    }


class ConfirmForm(FlaskForm):
    """A POST with a CSRF token: publish, cancel, delete."""

    submit = SubmitField("Confirm")


class CancelForm(FlaskForm):
    reason = StringField("Reason shown to the buyer", filters=[strip], validators=[Length(max=200)])
    submit = SubmitField("Cancel and refund")


class UserForm(FlaskForm):
    name = StringField("Name", filters=[strip], validators=[DataRequired(), Length(max=120)])
    email = EmailField("Email", filters=[strip], validators=[DataRequired(), Email(), Length(max=255)])
    password = PasswordField(
        "Password",
        validators=[Length(min=MIN_PASSWORD_LENGTH, max=200, message="The password must be at least 8 characters.")],
    )
    is_admin = BooleanField("Administrator")
    is_staff = BooleanField(_l("Door staff (checks tickets in)"))
    submit = SubmitField("Save user")

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        if user is None:
            self.password.validators = [DataRequired(), *self.password.validators]
        else:
            self.password.validators = [Optional(), *self.password.validators]

    def validate_email(self, field):
        owner = accounts.find_user_by_email(field.data)
        if owner is not None and (self.user is None or owner.id != self.user.id):
            raise ValidationError("Another account already uses this email.")
