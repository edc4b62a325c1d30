from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, HiddenField, PasswordField, SelectField, StringField, SubmitField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, EqualTo, Length, ValidationError

from app.i18n import LANGUAGES
from app.services.accounts import find_user_by_email

MIN_PASSWORD_LENGTH = 8


class LoginForm(FlaskForm):
    # No format check here: a mistyped address simply does not log in, with the same message.
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=255)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=200)])
    remember_me = BooleanField(_l("Remember me"))
    next = HiddenField()
    submit = SubmitField(_l("Log in"))


class RegistrationForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    email = EmailField(_l("Email"), validators=[DataRequired(), Email(), Length(max=255)])
    password = PasswordField(
        _l("Password"),
        validators=[
            DataRequired(),
            Length(min=MIN_PASSWORD_LENGTH, max=200, message=_l("The password must be at least 8 characters.")),
        ],
    )
    password2 = PasswordField(
        _l("Repeat password"), validators=[DataRequired(), EqualTo("password", _l("Passwords must match."))]
    )
    submit = SubmitField(_l("Create account"))

    def validate_email(self, field):
        if find_user_by_email(field.data) is not None:
            raise ValidationError(_("An account with this email already exists. Log in instead?"))


class AccountLanguageForm(FlaskForm):
    language = SelectField(
        _l("Language"),
        choices=[SelectChoice("", _l("As my browser asks"))]
        + [SelectChoice(code, name) for code, name in LANGUAGES.items()],
        validate_choice=True,
    )
    submit = SubmitField(_l("Save"))
